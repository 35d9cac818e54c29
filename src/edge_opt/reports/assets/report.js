// edge-opt report pages: sortable and filterable tables, hover cards on the frontier plot.
// No library and no request: everything the page needs is in the page.
(function () {
  "use strict";
  var dataNode = document.getElementById("edge-opt-data");
  var data = dataNode ? JSON.parse(dataNode.textContent) : {};

  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    var raw = cell ? cell.getAttribute("data-v") : "";
    if (!numeric) { return raw || ""; }
    return raw === "" || raw === null ? null : parseFloat(raw);
  }

  function sortTable(table, index, numeric, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
      if (x === null || x === "") { return (y === null || y === "") ? 0 : 1; } // empty last
      if (y === null || y === "") { return -1; }
      var order = numeric ? x - y : String(x).localeCompare(String(y), undefined, {numeric: true});
      return descending ? -order : order;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function initSorting(table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var descending = th.getAttribute("aria-sort") === "ascending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        sortTable(table, index, th.getAttribute("data-kind") === "num", descending);
      });
    });
  }

  function applyFilters(tableId) {
    var table = document.getElementById(tableId);
    if (!table) { return; }
    var text = "";
    var input = document.querySelector('.table-filter[data-table="' + tableId + '"]');
    if (input) { text = input.value.trim().toLowerCase(); }
    var select = document.querySelector('.verdict-filter[data-table="' + tableId + '"]');
    var verdict = select ? select.value : "";
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var okText = !text || row.textContent.toLowerCase().indexOf(text) !== -1;
      var okVerdict = !verdict || (" " + row.className + " ").indexOf(" " + verdict + " ") !== -1;
      row.hidden = !(okText && okVerdict);
      if (!row.hidden) { shown += 1; }
    });
    var count = document.querySelector('[data-count-for="' + tableId + '"]');
    if (count) { count.textContent = shown + " of " + table.tBodies[0].rows.length + " rows"; }
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), initSorting);
  Array.prototype.forEach.call(document.querySelectorAll(".table-filter, .verdict-filter"), function (el) {
    el.addEventListener("input", function () { applyFilters(el.getAttribute("data-table")); });
    el.addEventListener("change", function () { applyFilters(el.getAttribute("data-table")); });
  });

  // Hover (or keyboard focus) on a frontier point: a card with the candidate's figures.
  var svg = document.getElementById("frontier");
  var tip = document.getElementById("tooltip");
  var byId = {};
  (data.candidates || []).forEach(function (c) { byId[c.candidate_id] = c; });

  function fmt(value, digits) {
    return value === null || value === undefined ? "n/a" : Number(value).toPrecision(digits);
  }

  function card(c) {
    var lines = [];
    var title = document.createElement("b");
    title.textContent = c.candidate_id;
    lines.push(title);
    var ci = c.latency_p50_ci95_low_ms === null || c.latency_p50_ci95_low_ms === undefined ? "" :
      " [" + fmt(c.latency_p50_ci95_low_ms, 4) + ", " + fmt(c.latency_p50_ci95_high_ms, 4) + "]";
    [
      "p50 " + fmt(c.latency_p50_ms, 4) + " ms" + ci + " (95% CI)",
      "accuracy " + fmt(c.accuracy, 4),
      "size " + fmt(c.size_kib, 4) + " KiB",
      c.verdict + (c.recommended && c.on_frontier ? ", on the frontier" : "")
    ].forEach(function (text) { var d = document.createElement("div"); d.textContent = text; lines.push(d); });
    return lines;
  }

  function show(event, point) {
    var c = byId[point.getAttribute("data-id")];
    if (!c || !tip) { return; }
    tip.textContent = "";
    card(c).forEach(function (node) { tip.appendChild(node); });
    var box = svg.parentNode.getBoundingClientRect();
    var at = event && event.clientX !== undefined ? {x: event.clientX, y: event.clientY}
      : point.getBoundingClientRect();
    tip.style.left = (at.x - box.left + 14) + "px";
    tip.style.top = (at.y - box.top + 10) + "px";
    tip.style.display = "block";
  }

  function hide() { if (tip) { tip.style.display = "none"; } }

  if (svg) {
    Array.prototype.forEach.call(svg.querySelectorAll(".pt"), function (point) {
      point.addEventListener("mousemove", function (e) { show(e, point); });
      point.addEventListener("focus", function () { show(null, point); });
      point.addEventListener("mouseleave", hide);
      point.addEventListener("blur", hide);
      point.addEventListener("click", function () {
        var id = point.getAttribute("data-id");
        var rows = document.querySelectorAll("#candidates tbody tr");
        Array.prototype.forEach.call(rows, function (row) {
          if (row.getAttribute("data-id") === id) {
            row.classList.add("flash");
            row.scrollIntoView({block: "center"});
            setTimeout(function () { row.classList.remove("flash"); }, 1500);
          }
        });
      });
    });
  }
})();
