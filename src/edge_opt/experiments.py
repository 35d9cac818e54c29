"""The experiment API: training, the sweep, Pareto frontiers and the recommendation.

``train_model`` lives in ``edge_opt.training`` and ``run_sweep`` in ``edge_opt.sweep``; both are
re-exported here, the import path the documentation promises. The sweep is the only place that
loops over candidates; a candidate that fails is a row with ``status=failed`` and its error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from edge_opt.sweep import (
    CandidateResult,
    budget_column,
    candidate_id,
    frame_rows,
    prune_variants,
    run_sweep,
)
from edge_opt.training import EpochStats, train_model

__all__ = [
    "CandidateResult",
    "EpochStats",
    "Recommendation",
    "budget_column",
    "candidate_id",
    "frame_rows",
    "pareto_frontier",
    "prune_variants",
    "recommend_candidate",
    "run_sweep",
    "train_model",
]


# ------------------------------------------------------------------------------------ Pareto
def pareto_frontier(df: pd.DataFrame, x_col: str, use_ci: bool = False) -> pd.DataFrame:
    """Accuracy-vs-cost frontier over accepted candidates.

    Sorted by cost ascending then accuracy descending, a row is kept when its accuracy beats
    every cheaper row's. With ``use_ci``, accuracy is the 95% lower bound
    (``accuracy_ci95_low``), so a point must beat cheaper ones beyond sampling noise.

    Args:
        df: sweep rows with ``accepted``, ``accuracy`` and ``x_col``.
        x_col: cost column, e.g. ``latency_p50_ms`` or ``energy_proxy_j``.
        use_ci: rank by ``accuracy_ci95_low`` instead of ``accuracy``.

    Returns:
        The frontier rows (same columns as ``df``); empty when nothing is accepted.
    """
    acc_col = "accuracy_ci95_low" if use_ci else "accuracy"
    for col in ("accepted", x_col, acc_col):
        if col not in df.columns and not df.empty:
            raise KeyError(f"pareto_frontier: column {col!r} is missing from the sweep table")
    if df.empty:
        return df.copy()
    mask = df["accepted"].astype(bool)
    if "status" in df.columns:
        mask &= df["status"] == "ok"
    ranked = df[mask].sort_values([x_col, acc_col], ascending=[True, False], kind="stable")
    keep, best = [], -math.inf
    for idx, acc in ranked[acc_col].items():
        if acc > best:
            keep.append(idx)
            best = acc
    return ranked.loc[keep].reset_index(drop=True)


@dataclass(frozen=True)
class Recommendation:
    candidate_id: str | None
    reason: str
    baseline_accuracy: float
    max_accuracy_drop: float
    cost_column: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend_candidate(
    df: pd.DataFrame,
    baseline_accuracy: float,
    max_accuracy_drop: float,
    cost_col: str = "latency_p50_ms",
) -> Recommendation:
    """Among accepted candidates within ``max_accuracy_drop`` of the baseline's validation
    accuracy, the one with the lowest ``cost_col``; or none, with the reason."""

    def rec(cid: str | None, reason: str) -> Recommendation:
        return Recommendation(cid, reason, baseline_accuracy, max_accuracy_drop, cost_col)

    ok = df[df["status"] == "ok"] if "status" in df.columns else df
    accepted = ok[ok["accepted"].astype(bool)] if not ok.empty else ok
    if accepted.empty:
        budget = df["active_budget_mb"].iloc[0] if not df.empty else float("nan")
        slow = 0
        if "violates_latency_budget" in ok.columns:
            slow = int(ok["violates_latency_budget"].fillna(False).astype(bool).sum())
        if slow:
            return rec(
                None,
                f"no candidate was accepted: {slow} of the {len(ok)} measured candidates "
                "exceed the latency budget (latency_budget_ms, on the p95) and the rest, if "
                f"any, the active memory budget of {budget:g} MB",
            )
        return rec(
            None,
            f"no candidate was accepted: none of the {len(ok)} measured candidates "
            f"fits the active memory budget of {budget:g} MB",
        )
    floor = baseline_accuracy - max_accuracy_drop
    eligible = accepted[accepted["accuracy"] >= floor - 1e-12]
    if eligible.empty:
        best = accepted.sort_values("accuracy", ascending=False).iloc[0]
        return rec(
            None,
            f"{len(accepted)} candidate(s) fit the budget, but none is within "
            f"{max_accuracy_drop:g} of the baseline's validation accuracy "
            f"{baseline_accuracy:.4f}; the most accurate accepted one is "
            f"{best['candidate_id']} at {best['accuracy']:.4f}",
        )
    best = eligible.sort_values([cost_col, "accuracy"], ascending=[True, False]).iloc[0]
    return rec(
        str(best["candidate_id"]),
        f"lowest {cost_col} ({best[cost_col]:.4g}) among {len(eligible)} accepted candidate(s) "
        f"within {max_accuracy_drop:g} of the baseline's validation accuracy "
        f"({baseline_accuracy:.4f}); its accuracy is {best['accuracy']:.4f} and its size "
        f"{best['memory_mb']:.4f} MB",
    )
