"""What decided the recommendation, and what would flip it.

A device class is three constraints: a memory budget (``active_memory_budget_mb`` on the
``memory_budget_metric``), a latency budget per frame (``latency_budget_ms``, on the p95) and
an accuracy tolerance (``max_accuracy_drop``). The pick is the cheapest candidate that meets
all three. ``explain_decision`` names the constraint that kept a cheaper candidate out (or
says none bound), the runner-up, and the budget or tolerance at which the excluded or the
runner-up candidate would win. Pure functions over the sweep table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C


@dataclass(frozen=True)
class Decision:
    """Why the pick won, and what would change it."""

    decided_by: str  # "cost" (nothing bound), "memory budget", "accuracy tolerance", ...
    explanation: str
    runner_up: str | None
    runner_up_cost: float | None
    flips: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _blockers(
    row: pd.Series,
    floor: float,
    active_mb: float,
    memory_col: str,
    latency_budget: float | None,
) -> list[tuple[str, str]]:
    """(constraint, what it would take) for every constraint ``row`` breaks."""
    out = []
    need_mb = row.get(memory_col)
    if need_mb is not None and not pd.isna(need_mb) and float(need_mb) > active_mb:
        out.append(
            (
                "memory budget",
                f"needs {float(need_mb):.4g} MB of {memory_col} > the {active_mb:g} MB budget: "
                f"an active_memory_budget_mb >= {float(need_mb):.4g} would admit it",
            )
        )
    if float(row[C.accuracy]) < floor - 1e-12:
        drop = floor + 0.0 - float(row[C.accuracy])
        out.append(
            (
                "accuracy tolerance",
                f"its accuracy {float(row['accuracy']):.4f} is {drop:.4f} below the floor: a "
                f"max_accuracy_drop larger by {drop:.4f} would admit it",
            )
        )
    if latency_budget is not None and bool(row.get(C.violates_latency_budget) is True):
        out.append(
            (
                "latency budget",
                f"its p95 {float(row[C.latency_budget_figure]):.4g} ms exceeds the "
                f"{latency_budget:g} ms budget",
            )
        )
    return out


def explain_decision(
    frame: pd.DataFrame,
    recommended: str | None,
    reference_accuracy: float,
    max_accuracy_drop: float,
    cost_col: str,
    active_budget_mb: float,
    memory_col: str,
    latency_budget_ms: float | None = None,
) -> Decision | None:
    """Name the constraint that decided ``recommended`` and what would flip it; ``None`` when
    nothing was recommended (the recommendation's reason already says why)."""
    ok = frame[(frame[C.status] == "ok") & frame[cost_col].notna()] if not frame.empty else frame
    if recommended is None or ok.empty or recommended not in set(ok[C.candidate_id]):
        return None
    ranked = ok.sort_values([cost_col, "accuracy"], ascending=[True, False], kind="stable")
    pick = ranked[ranked[C.candidate_id] == recommended].iloc[0]
    floor = reference_accuracy - max_accuracy_drop
    faster = ranked[ranked[cost_col] < pick[cost_col]]
    flips: list[str] = []
    decided_by = "cost"
    explanation = (
        f"{recommended} has the lowest {cost_col} of all {len(ok)} measured candidates: no "
        "constraint bound"
    )
    if not faster.empty:
        best = faster.iloc[0]
        blockers = _blockers(best, floor, active_budget_mb, memory_col, latency_budget_ms)
        names = [name for name, _ in blockers] or ["unknown"]
        decided_by = " and ".join(names)
        explanation = (
            f"{len(faster)} candidate(s) are faster than {recommended}; the fastest, "
            f"{best['candidate_id']} ({float(best[cost_col]):.4g} vs "
            f"{float(pick[cost_col]):.4g} {_unit(cost_col)}), is excluded by the "
            f"{decided_by}"
        )
        flips += [f"{best['candidate_id']}: {how}" for _, how in blockers]
    eligible = ranked[ranked[C.accepted].astype(bool) & (ranked[C.accuracy] >= floor - 1e-12)]
    others = eligible[eligible[C.candidate_id] != recommended]
    runner = others.iloc[0] if not others.empty else None
    if runner is not None:
        ratio = float(runner[cost_col]) / max(float(pick[cost_col]), 1e-12)
        flips.append(
            f"runner-up {runner['candidate_id']} ({float(runner[cost_col]):.4g} "
            f"{_unit(cost_col)}, {ratio:.2f}x the pick's) wins if {recommended} is excluded"
            + _what_excludes(pick, runner, memory_col, floor)
        )
    return Decision(
        decided_by,
        explanation,
        None if runner is None else str(runner[C.candidate_id]),
        None if runner is None else float(runner[cost_col]),
        flips,
    )


def _what_excludes(pick: pd.Series, runner: pd.Series, memory_col: str, floor: float) -> str:
    parts = []
    pick_mb, runner_mb = pick.get(memory_col), runner.get(memory_col)
    if _num(pick_mb) and _num(runner_mb) and float(runner_mb) < float(pick_mb):
        parts.append(
            f"an active_memory_budget_mb below {float(pick_mb):.4g} (and >= "
            f"{float(runner_mb):.4g}) would do it"
        )
    if float(runner[C.accuracy]) > float(pick[C.accuracy]):
        parts.append(
            f"a max_accuracy_drop that {pick['candidate_id']}'s accuracy "
            f"{float(pick['accuracy']):.4f} misses would do it"
        )
    return ": " + "; ".join(parts) if parts else ""


def _num(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _unit(cost_col: str) -> str:
    return "ms" if cost_col.endswith("_ms") else cost_col
