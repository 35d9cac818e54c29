"""Terminal tables: columns chosen to fit the width, no cell ever cut, fixed precision."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console
from rich.table import Table

from edge_opt.reports.tables import (
    PIPE_WIDTH,
    TextTable,
    candidate_table,
    decimals_for,
    fit_to_width,
    multi_seed_table,
    table_width,
    terminal_width,
)


def sweep_frame() -> pd.DataFrame:
    rows = []
    for i, cid in enumerate(("p00-fp32-onnxruntime", "p50-int8-onnxruntime", "p70-int8-eager")):
        rows.append(
            {
                "candidate_id": cid,
                "status": "ok",
                "accepted": i > 0,
                "accuracy": 0.5912345 + i / 100,
                "latency_p50_ms": 0.0221 * (i + 1),
                "latency_p95_ms": 0.1234567 * (i + 1),
                "latency_p50_precision": 0.0123,
                "speedup_vs_baseline": 5.2712,
                "model_size_bytes": 91_340 // (i + 1),
            }
        )
    rows.append({"candidate_id": "p00-fp16-onnxruntime", "status": "skipped"})
    return pd.DataFrame(rows)


def render(table: TextTable, width: int) -> str:
    """Render as the CLI does (rich, no wrapping) into text of ``width`` columns."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None)
    rich_table = Table(title=table.title)
    for col, col_width in zip(table.columns, table.widths(), strict=True):
        rich_table.add_column(col.header, justify=col.justify, no_wrap=True, min_width=col_width)
    for row in table.rows:
        rich_table.add_row(*row)
    console.print(rich_table)
    return buffer.getvalue()


def test_width_80_keeps_the_important_columns_and_cuts_no_cell() -> None:
    table = candidate_table(sweep_frame(), recommended="p50-int8-onnxruntime")
    fitted, dropped = fit_to_width(table, 80)
    assert [c.header for c in fitted.columns] == [
        "candidate",
        "verdict",
        "accuracy",
        "p50 ms",
        "size KiB",
        "p50 +-",
    ]
    assert dropped == ["speedup", "p95 ms"]
    assert table_width(fitted.widths()) <= 80
    text = render(fitted, 80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for cell in ("p50-int8-onnxruntime", "RECOMMENDED", "0.5912", "0.0221", "89.2", "±1.2%"):
        assert cell in text
    assert "skipped" in text  # a row that did not run says so, with dashes for its numbers


def test_wide_terminal_shows_every_column_with_fixed_precision() -> None:
    table = candidate_table(sweep_frame(), recommended=None)
    fitted, dropped = fit_to_width(table, 200)
    assert dropped == []
    first = dict(zip([c.header for c in fitted.columns], fitted.rows[0], strict=True))
    # p50 and p95 share 4 decimals (the smallest, 0.0221 ms, keeps 3 significant digits).
    assert first == {
        "candidate": "p00-fp32-onnxruntime",
        "verdict": "rejected",
        "accuracy": "0.5912",
        "p50 ms": "0.0221",
        "size KiB": "89.2",
        "p50 +-": "±1.2%",
        "speedup": "5.27x",
        "p95 ms": "0.1235",
    }


def test_too_narrow_keeps_only_the_columns_that_are_never_dropped() -> None:
    fitted, dropped = fit_to_width(candidate_table(sweep_frame(), None), 20)
    assert [c.header for c in fitted.columns] == ["candidate", "verdict"]
    assert len(dropped) == 6
    assert "…" not in render(fitted, 40)


def test_table_width_counts_padding_and_borders() -> None:
    # "│ ab │ c │": 2 + 1 text, 2 spaces of padding each, 3 borders.
    assert table_width([2, 1]) == 10


@pytest.mark.parametrize(
    ("values", "decimals"),
    [([0.0221, 0.1234], 4), ([0.1187, 0.5], 3), ([12.3, 150.0], 1), ([1234.0], 0), ([], 2)],
)
def test_decimals_for_shows_three_significant_digits_of_the_smallest(values, decimals) -> None:
    assert decimals_for(values) == decimals


@pytest.mark.parametrize(
    ("is_terminal", "columns", "environ", "width"),
    [
        (True, 132, {"COLUMNS": "60"}, 132),
        (False, 80, {"COLUMNS": "60"}, 60),
        (False, 80, {}, PIPE_WIDTH),
        (False, 80, {"COLUMNS": "wide"}, PIPE_WIDTH),
        (False, 80, {"COLUMNS": "0"}, PIPE_WIDTH),
    ],
)
def test_terminal_width_when_piped_is_columns_or_100(is_terminal, columns, environ, width) -> None:
    assert terminal_width(is_terminal, columns, environ) == width


def test_multi_seed_table_drops_the_intervals_first() -> None:
    summary = pd.DataFrame(
        [
            {
                "candidate_id": "p00-int8-eager",
                "accuracy_mean": 0.95,
                "accuracy_ci95_low": 0.94,
                "accuracy_ci95_high": 0.96,
                "latency_p50_ms_mean": 0.12,
                "latency_p50_ms_ci95_low": 0.11,
                "latency_p50_ms_ci95_high": 0.13,
                "accepted_share": 1.0,
            }
        ]
    )
    fitted, dropped = fit_to_width(multi_seed_table(summary, [1, 2]), 60)
    assert [c.header for c in fitted.columns] == ["candidate", "accuracy", "p50 ms", "accepted"]
    assert dropped == ["accuracy 95% CI", "p50 95% CI"]
    wide, _ = fit_to_width(multi_seed_table(summary, [1, 2]), 200)
    assert wide.rows[0][-1] == "[0.110, 0.130]"
