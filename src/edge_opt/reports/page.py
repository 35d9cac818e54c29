"""The shell every HTML page of edge-opt shares: one self-contained file, no network request.

Styles and script are package files inlined into the page; data travels as JSON in a
``<script type="application/json">`` block, escaped so that no value (a candidate id, a class
name, a path: all come from users) can close the block or open a comment.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

# Characters that could end a <script> block or start markup inside it, and the two line
# separators JavaScript source may not contain; JSON allows \u escapes for all of them.
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


_TEXT_CELL = ' class="t"'


def esc(value: Any) -> str:
    """Text for HTML content or a quoted attribute."""
    return html.escape("" if value is None else str(value), quote=True)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        return _finite(value.item())
    return value


def json_script(element_id: str, payload: Any) -> str:
    """``payload`` as a JSON data block that nothing in it can break out of."""
    text = json.dumps(_finite(payload), allow_nan=False, default=str, sort_keys=False)
    for char, escaped in _JSON_ESCAPES.items():
        text = text.replace(char, escaped)
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def asset(name: str) -> str:
    """A file of ``edge_opt/reports/assets`` (the page's CSS and JS)."""
    return (files("edge_opt.reports") / "assets" / name).read_text(encoding="utf-8")


def page(title: str, body: str, data: Any) -> str:
    """A complete HTML document: inline CSS and JS, a restrictive CSP, the data block."""
    # The policy forbids every fetch: scripts and styles only inline, images only data: URIs.
    csp = (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
            f"<style>\n{asset('report.css')}</style>",
            "</head>",
            "<body>",
            body,
            json_script("edge-opt-data", data),
            f"<script>\n{asset('report.js')}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


@dataclass(frozen=True)
class Column:
    """A table column: the row key, its header, a number format (None: text) and a tooltip."""

    key: str
    label: str
    fmt: str | None = None
    help: str = ""
    scale: float = 1.0  # the cell shows value x scale (MiB as KiB)


def _scaled(value: Any, scale: float) -> Any:
    if scale == 1.0 or value is None or isinstance(value, bool | str):
        return value
    try:
        return float(value) * scale
    except (TypeError, ValueError):
        return value


def fmt_value(value: Any, fmt: str | None) -> str:
    """A cell's text: empty for missing or non-finite numbers."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool) or fmt is None:
        return str(value)
    try:
        return format(float(value), fmt)
    except (TypeError, ValueError):
        return str(value)


def sort_key(value: Any) -> str:
    """What the page sorts a cell by: numbers as numbers, the rest as text."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int | float):
        return repr(float(value)) if math.isfinite(value) else ""
    return "" if value is None else str(value)


def table(
    table_id: str,
    columns: Sequence[Column],
    rows: Iterable[dict[str, Any]],
    row_attrs: Sequence[dict[str, str]] | None = None,
    filterable: bool = True,
) -> str:
    """A sortable (click a header), optionally filterable HTML table.

    Args:
        table_id: the element id (the page's script finds its tables by class).
        columns: what to show, in order.
        rows: one mapping per row (missing keys are empty cells).
        row_attrs: extra attributes per row (``data-id``, ``class``), values escaped here.
        filterable: add a text filter above the table.
    """
    rows = list(rows)
    head = "".join(
        f'<th scope="col" data-kind="{"num" if c.fmt else "text"}" title="{esc(c.help)}">'
        f'<button type="button">{esc(c.label)}</button></th>'
        for c in columns
    )
    body = []
    for index, row in enumerate(rows):
        extra = row_attrs[index] if row_attrs else {}
        attrs = "".join(f' {k}="{esc(v)}"' for k, v in extra.items())
        cells = "".join(
            f'<td{_TEXT_CELL if c.fmt is None else ""} data-v="{esc(sort_key(row.get(c.key)))}">'
            f"{esc(fmt_value(_scaled(row.get(c.key), c.scale), c.fmt))}</td>"
            for c in columns
        )
        body.append(f"<tr{attrs}>{cells}</tr>")
    search = (
        f'<div class="filters"><label>Filter <input type="search" class="table-filter" '
        f'data-table="{esc(table_id)}" placeholder="text in any cell"></label> '
        f'<span class="count" data-count-for="{esc(table_id)}">{len(rows)} rows</span></div>'
        if filterable
        else ""
    )
    return (
        f'{search}<div class="table-wrap"><table id="{esc(table_id)}" class="sortable">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column definition table for a handful of facts."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def bullet_list(items: Sequence[str], empty: str = "none") -> str:
    if not items:
        return f"<p>{esc(empty)}</p>"
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def peak_text(dtype: str, figure: dict[str, Any]) -> str:
    """``fp32 24 GMAC/s (datasheet)``; an unknown rate (null once in JSON) says so."""
    value = figure.get("value")
    if figure.get("source") == "unknown" or value is None or value != value:
        return f"{dtype} unknown (not projected)"
    return f"{dtype} {value:.4g} GMAC/s ({figure['source']})"
