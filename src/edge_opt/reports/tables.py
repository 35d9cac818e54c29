"""Terminal tables that fit the width: columns chosen by priority, numbers at fixed precision.

A table is computed as text first (``TextTable``: headers, priorities, formatted cells), then
``fit_to_width`` drops the least important columns until every remaining cell fits whole: a
cell is never cut to ``0.59…``. The CLI renders the result with rich (no wrapping); the full
table is always in the run's files. Everything here is pure: no terminal, no rich.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C, label

__all__ = [
    "Column",
    "TextTable",
    "candidate_table",
    "decimals_for",
    "fit_to_width",
    "multi_seed_table",
    "operator_table",
    "table_width",
    "terminal_width",
]

PIPE_WIDTH = 100  # width assumed when output is piped and COLUMNS is not set


@dataclass(frozen=True)
class Column:
    """A table column: its header, how important it is (0 = always shown), its alignment."""

    header: str
    priority: int = 1
    justify: str = "right"


@dataclass(frozen=True)
class TextTable:
    """Formatted cells, one tuple per row, in column order."""

    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[str, ...], ...]

    def widths(self) -> list[int]:
        """Each column's width in characters: its header or its widest cell."""
        return [
            max([len(col.header), *(len(row[i]) for row in self.rows)])
            for i, col in enumerate(self.columns)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "columns": [c.header for c in self.columns],
            "rows": [list(r) for r in self.rows],
        }


def table_width(widths: Sequence[int]) -> int:
    """Characters one line of a boxed table takes: each column's text with one space of
    padding on each side, and ``n + 1`` vertical borders (rich's default box)."""
    return sum(widths) + 3 * len(widths) + 1


def fit_to_width(table: TextTable, width: int) -> tuple[TextTable, list[str]]:
    """Drop columns until the table fits ``width``: highest priority number first, the rightmost
    first among equals. Priority-0 columns are never dropped (if they alone are too wide, the
    line is longer than ``width``; the terminal wraps it rather than a cell being cut).

    Returns:
        The fitted table and the headers of the dropped columns, in table order.
    """
    keep = list(range(len(table.columns)))
    widths = table.widths()
    droppable = sorted(
        (i for i, c in enumerate(table.columns) if c.priority > 0),
        key=lambda i: (table.columns[i].priority, i),
        reverse=True,
    )
    for index in droppable:
        if table_width([widths[i] for i in keep]) <= width:
            break
        keep.remove(index)
    dropped = [c.header for i, c in enumerate(table.columns) if i not in keep]
    fitted = replace(
        table,
        columns=tuple(table.columns[i] for i in keep),
        rows=tuple(tuple(row[i] for i in keep) for row in table.rows),
    )
    return fitted, dropped


def terminal_width(is_terminal: bool, terminal_columns: int, environ: dict[str, str]) -> int:
    """The width to fit: the terminal's; when piped, ``COLUMNS`` if it is a positive integer,
    else ``PIPE_WIDTH``."""
    if is_terminal and terminal_columns > 0:
        return terminal_columns
    value = environ.get("COLUMNS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else PIPE_WIDTH


def decimals_for(values: Iterable[float], significant: int = 3, most: int = 4) -> int:
    """Decimals that show the smallest non-zero magnitude with ``significant`` digits (at most
    ``most``): one precision per column, so the numbers line up."""
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if not finite:
        return 2
    exponent = math.floor(math.log10(min(finite)))
    return max(0, min(most, significant - 1 - exponent))


def _fixed(value: Any, decimals: int, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value):.{decimals}f}{suffix}"


def _present(row: pd.Series, key: str) -> Any:
    value = row.get(key)
    return None if value is None or pd.isna(value) else value


def candidate_table(sweep: pd.DataFrame, recommended: str | None) -> TextTable:
    """The run's candidates: identity and verdict first, then accuracy, p50, size, and the
    columns that go first when space runs out (the CI of p50, speedup, p95)."""
    columns = (
        Column(label(C.candidate_id), 0, "left"),
        Column(label(C.verdict), 0, "left"),
        Column(label(C.accuracy), 1),
        Column(label(C.latency_p50_ms), 1),
        Column(label(C.memory_mb), 2),
        Column(label(C.latency_p50_precision), 3),
        Column(label(C.speedup_vs_baseline), 4),
        Column(label(C.latency_p95_ms), 5),
    )
    ok = sweep[sweep[C.status] == "ok"] if C.status in sweep else sweep
    ms_values = [*ok.get(C.latency_p50_ms, []), *ok.get(C.latency_p95_ms, [])]
    ms = decimals_for(float(v) for v in ms_values if pd.notna(v))
    rows = []
    for _, row in sweep.iterrows():
        cid = str(row[C.candidate_id])
        if row.get(C.status) != "ok":
            rows.append((cid, str(row.get(C.status)), *("-",) * 6))
            continue
        verdict = "accepted" if bool(row.get(C.accepted)) else "rejected"
        if cid == recommended:
            verdict = "RECOMMENDED"
        p50 = _present(row, C.latency_p50_ms)
        precision = _present(row, C.latency_p50_precision)
        speedup = _present(row, C.speedup_vs_baseline)
        size = _present(row, C.model_size_bytes)
        rows.append(
            (
                cid,
                verdict,
                _fixed(_present(row, "accuracy"), 4),
                _fixed(p50, ms),
                _fixed(None if size is None else size / 1024, 1),
                "-" if precision is None else f"±{precision:.1%}",
                _fixed(speedup, 2, "x"),
                _fixed(_present(row, C.latency_p95_ms), ms),
            )
        )
    title = "candidates (accuracy on validation; latency per call, measured)"
    return TextTable(title, columns, tuple(rows))


def multi_seed_table(summary: pd.DataFrame, seeds: Sequence[int]) -> TextTable:
    """Candidates over seeds: means first, their 95% CIs go first when space runs out."""
    columns = (
        Column("candidate", 0, "left"),
        Column("accuracy", 1),
        Column("p50 ms", 1),
        Column("accepted", 2),
        Column("accuracy 95% CI", 3),
        Column("p50 95% CI", 3),
    )
    ms = decimals_for(float(v) for v in summary.get("latency_p50_ms_mean", []) if pd.notna(v))

    def ci(row: pd.Series, metric: str, decimals: int) -> str:
        low, high = _present(row, f"{metric}_ci95_low"), _present(row, f"{metric}_ci95_high")
        if low is None or high is None:
            return "-"
        return f"[{low:.{decimals}f}, {high:.{decimals}f}]"

    rows = tuple(
        (
            str(row[C.candidate_id]),
            _fixed(_present(row, "accuracy_mean"), 4),
            _fixed(_present(row, "latency_p50_ms_mean"), ms),
            _fixed(_present(row, "accepted_share"), 2),
            ci(row, "accuracy", 4),
            ci(row, C.latency_p50_ms, ms),
        )
        for _, row in summary.iterrows()
    )
    title = f"candidates over seeds {list(seeds)} (mean; 95% CI over seeds)"
    return TextTable(title, columns, rows)


def operator_table(rows: Sequence[dict[str, Any]], subject: str) -> TextTable:
    """The operator profile: name, latency, memory, calls."""
    ms = decimals_for(float(r[C.latency_ms]) for r in rows)
    columns = (
        Column("operator", 0, "left"),
        Column("latency ms", 1),
        Column("memory KB", 2),
        Column("calls", 3),
    )
    cells = tuple(
        (
            str(r["operator"]),
            _fixed(r[C.latency_ms], ms),
            _fixed(r["memory_kb"], 1),
            f"{r['calls']:g}",
        )
        for r in rows
    )
    title = f"operators of {subject} (per forward, profiler overhead included)"
    return TextTable(title, columns, cells)
