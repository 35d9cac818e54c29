"""A memory budget far above every candidate does not squash the size plot against 0; the
legend says where it is instead (issue 20, item 7)."""

from __future__ import annotations

import pandas as pd

from edge_opt.reports.plots import scatter


def sweep() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "candidate_id": ["p00-fp32-eager", "p50-int8-eager"],
            "status": ["ok", "ok"],
            "precision": ["fp32", "int8"],
            "runtime": ["eager", "eager"],
            "accepted": [True, True],
            "memory_mb": [0.10, 0.02],
            "accuracy": [0.90, 0.88],
        }
    )


def legend_texts(fig) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_a_far_budget_is_named_in_the_legend_not_drawn() -> None:
    fig = scatter(sweep(), sweep().iloc[0:0], "memory_mb", "size", "t", budget_mb=64.0)
    assert fig.axes[0].get_xlim()[1] < 1.0  # the points use the width
    assert "active budget 64 MB: off the axis, above every point" in legend_texts(fig)


def test_a_near_budget_is_drawn_as_a_line() -> None:
    fig = scatter(sweep(), sweep().iloc[0:0], "memory_mb", "size", "t", budget_mb=0.05)
    assert any(list(line.get_xdata()) == [0.05, 0.05] for line in fig.axes[0].get_lines())
    assert "active budget 0.05 MB" in legend_texts(fig)
