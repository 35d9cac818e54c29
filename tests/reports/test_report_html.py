"""report.html: structure, escaping, and a real headless Chromium opening it (file://)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from edge_opt.analysis.hardware import precision_tradeoff_table
from edge_opt.reports.html import render_html
from edge_opt.reports.page import json_script
from edge_opt.reports.plots import scatter, untimed_note
from edge_opt.reports.result import RunResult

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE_ID = "</script><img src=x onerror=\"document.title='pwned'\"><!--"


def test_json_block_cannot_be_closed_or_commented_by_a_value() -> None:
    payload = {"id": HOSTILE_ID, "name": "a\u2028b & <c>"}
    block = json_script("d", payload)
    inner = block.removeprefix('<script type="application/json" id="d">').removesuffix("</script>")
    for char in ("<", ">", "\u2028"):
        assert char not in inner
    assert json.loads(inner) == payload


def test_untimed_rows_are_named_by_status_never_all_failed() -> None:
    sweep = pd.DataFrame({"status": ["ok", "skipped", "skipped", "failed"]})
    assert untimed_note(sweep) == "2 skipped, 1 failed: not plotted"
    assert untimed_note(sweep.iloc[:1]) == ""


def test_precision_tradeoffs_compare_each_runtime_with_its_own_fp32() -> None:
    rows = [
        # ONNX Runtime int8 is 1.8x slower than ONNX Runtime fp32, though faster than eager fp32.
        ("eager", "fp32", 1.0, 0.08),
        ("eager", "int8", 1.2, 0.02),
        ("onnxruntime", "fp32", 0.5, 0.08),
        ("onnxruntime", "int8", 0.9, 0.03),
    ]
    sweep = pd.DataFrame(
        [
            {
                "runtime": r,
                "precision": p,
                "pruning_level": 0.0,
                "status": "ok",
                "accuracy": 0.9,
                "latency_ms": lat,
                "latency_p50_ms": lat,
                "memory_mb": mem,
                "energy_proxy_j": lat * 5e-3,
                "accepted": True,
            }
            for r, p, lat, mem in rows
        ]
    )
    table = precision_tradeoff_table(sweep).set_index(["runtime", "precision"])
    assert table.loc[("onnxruntime", "int8"), "latency_p50_ratio_vs_fp32"] == pytest.approx(1.8)
    assert table.loc[("eager", "int8"), "latency_p50_ratio_vs_fp32"] == pytest.approx(1.2)
    assert table.loc[("onnxruntime", "int8"), "size_ratio_vs_fp32"] == pytest.approx(0.375)
    assert list(table.index.get_level_values(0)) == ["eager", "eager", "onnxruntime", "onnxruntime"]


def test_frontier_labels_never_overlap_each_other() -> None:
    # Twelve frontier points crowded into a corner: labels must find free places or go to
    # the legend, never on top of each other.
    n = 12
    sweep = pd.DataFrame(
        {
            "candidate_id": [f"p{i:02d}-int8-onnxruntime" for i in range(n)],
            "precision": ["int8"] * n,
            "runtime": ["onnxruntime"] * n,
            "status": ["ok"] * n,
            "accepted": [True] * n,
            "latency_p50_ms": [1.0 + 0.01 * i for i in range(n)],
            "accuracy": [0.90 + 0.001 * i for i in range(n)],
        }
    )
    fig = scatter(
        sweep, sweep, "latency_p50_ms", "p50", "crowded", recommended="p00-int8-onnxruntime"
    )
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid() == "frontier-label"]
    boxes = [t.get_window_extent(renderer) for t in labels]
    assert labels, "at least one frontier point is labelled"
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b)
    legend_texts = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    placed = {t.get_text() for t in labels}
    for cid in sweep["candidate_id"]:
        assert cid in placed or cid in legend_texts
    assert "recommended: p00-int8-onnxruntime" in legend_texts


@pytest.mark.slow
def test_report_html_is_written_recorded_and_self_contained(small_run: Path) -> None:
    page = (small_run / "report.html").read_text(encoding="utf-8")
    manifest = json.loads((small_run / "manifest.json").read_text())
    digest = hashlib.sha256((small_run / "report.html").read_bytes()).hexdigest()
    assert manifest["files"]["report.html"] == digest
    published = json.loads((small_run / ".edge-opt" / "published.json").read_text())["files"]
    assert "report.html" in published
    # Nothing that a browser would fetch: no external src/href/url(), no @import.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "url(" not in page
    assert "@import" not in page
    sweep = pd.read_csv(small_run / "sweep_results.csv")
    assert page.count('class="pt ') == int((sweep["status"] == "ok").sum())
    assert page.index('id="verdict"') < page.index('id="frontier"') < page.index('id="candidates"')
    summary = json.loads((small_run / "summary.json").read_text())
    assert f'Recommended: <span class="mono">{summary["recommended"]}</span>' in page
    # Recovery: one curve and one table row per level, and the curves' CSV (epoch 0 + 1).
    assert page.count('class="recovery-curve"') == 2
    assert "distilled from the baseline (T=2, weight 0.5), 2 steps, 1 of 1 epoch(s)" in page
    curves = pd.read_csv(small_run / "recovery_curves.csv")
    assert curves.groupby("level")["epoch"].apply(list).to_dict() == {0.0: [0, 1], 0.5: [0, 1]}
    assert list(curves[curves["level"] == 0.5]["steps_done"]) == [1, 2]
    assert "## Recovery after pruning" in (small_run / "report.md").read_text()
    # One constant power: the energy plot is written (an edge-opt v1 artifact) and says its shape.
    assert (small_run / "accuracy_vs_energy.png").stat().st_size > 0
    assert (
        "The energy proxy is mean latency x one constant 5 W"
        in (small_run / "report.md").read_text()
    )


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set and {CHROMIUM} is missing: scripts/ensure_browser.sh installs it")
    pytest.skip(f"{CHROMIUM} is not installed (scripts/ensure_browser.sh installs it)")


def _open(path: Path):  # type: ignore[no-untyped-def]
    """Yield (page, requests, problems) for ``path`` in headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            problems: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on(
                "console",
                lambda m: (
                    problems.append(f"{m.type}: {m.text}")
                    if m.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.goto(path.resolve().as_uri())
            page.wait_for_load_state("load")
            yield page, requests, problems
        finally:
            browser.close()


def _column(page, header: str) -> list[str]:  # type: ignore[no-untyped-def]
    index = page.eval_on_selector_all(
        "#candidates thead th", f"ths => ths.findIndex(th => th.textContent.trim() === {header!r})"
    )
    assert index >= 0, header
    return page.eval_on_selector_all(
        "#candidates tbody tr", f"rows => rows.map(r => r.cells[{index}].getAttribute('data-v'))"
    )


@pytest.mark.slow
def test_report_html_in_headless_chromium(small_run: Path, tmp_path: Path) -> None:
    _require_browser()
    report = small_run / "report.html"
    sweep = pd.read_csv(small_run / "sweep_results.csv")
    timed = int((sweep["status"] == "ok").sum())
    for page, requests, problems in _open(report):
        assert page.locator("#frontier .pt").count() == timed
        assert page.locator("#candidates tbody tr").count() == len(sweep)
        initial = _column(page, "candidate")
        assert initial == list(sweep["candidate_id"])
        page.click("#candidates thead th:has-text('p50 ms') button")
        p50 = [float(v) for v in _column(page, "p50 ms")]
        assert p50 == sorted(p50)
        page.click("#candidates thead th:has-text('candidate') button")
        page.click("#candidates thead th:has-text('candidate') button")
        assert _column(page, "candidate") == sorted(initial, reverse=True) != initial
        page.fill(".table-filter", "int8")
        assert page.locator("#candidates tbody tr:not([hidden])").count() == int(
            (sweep["precision"] == "int8").sum()
        )
        page.hover("#frontier .pt.recommended")
        card = page.inner_text("#tooltip")
        recommended = json.loads((small_run / "summary.json").read_text())["recommended"]
        for text in (recommended, "p50", "KiB", "accuracy"):
            assert text in card
        # The verdict leads with both machines and the pick's modelled figure on the Pi.
        target = page.inner_text("#verdict")
        assert target.index("Measured on: ") < target.index("Recommended")
        assert "Target: raspberry-pi-4 (Raspberry Pi 4 Model B" in target
        assert f"On raspberry-pi-4 (modelled, not measured): {recommended} projected p50" in target
        assert "Latency budget checked on the p95 of: raspberry-pi-4 (projected)" in target
        # The recovery curves: a line per level, a dot per epoch with its value on hover.
        assert page.locator("#recovery polyline.recovery-curve").count() == 2
        assert page.locator("#recovery-table tbody tr").count() == 2
        page.hover("#recovery circle >> nth=-1")
        assert "validation loss" in page.inner_text("#recovery")
        # At 1400 px the candidate table fits its column: nothing runs off the right edge.
        page.set_viewport_size({"width": 1400, "height": 900})
        right = page.evaluate("document.querySelector('#candidates').getBoundingClientRect().right")
        assert right <= 1400 - 24
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400
        shot = tmp_path / "report_html.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        assert problems == []
        assert requests == [report.resolve().as_uri()]


@pytest.mark.slow
def test_hostile_candidate_ids_stay_text_in_the_browser(small_run: Path, tmp_path: Path) -> None:
    _require_browser()
    result = RunResult.load(small_run)
    rec = result.recommendation["candidate_id"]
    rename = {rec: HOSTILE_ID}
    sweep = [
        {**r, "candidate_id": rename.get(r["candidate_id"], r["candidate_id"])}
        for r in result.sweep
    ]
    hostile = dataclasses.replace(
        result,
        sweep=sweep,
        recommendation={**result.recommendation, "candidate_id": HOSTILE_ID},
        latency_frontier=[rename.get(c, c) for c in result.latency_frontier],
        warnings=[*result.warnings, "<script>document.title='pwned'</script>"],
    )
    summary = {"recommended": HOSTILE_ID, "recommended_reason": "<b>x</b>"}
    path = tmp_path / "hostile.html"
    path.write_text(render_html(hostile, summary), encoding="utf-8")
    for page, requests, problems in _open(path):
        # The id is shown as text (title included); no script of it ran to set the title.
        assert page.title() == f"edge-opt report: {HOSTILE_ID}"
        assert page.locator("img").count() == 0
        assert page.locator(f"#candidates tbody tr >> text={HOSTILE_ID}").count() == 1
        page.hover("#frontier .pt.recommended")
        assert HOSTILE_ID in page.inner_text("#tooltip")
        assert problems == []
        assert requests == [path.resolve().as_uri()]


def test_browser_test_skips_only_without_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    me = sys.modules[__name__]  # patch this module's own CHROMIUM constant
    monkeypatch.setattr(me, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        me._require_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        me._require_browser()
