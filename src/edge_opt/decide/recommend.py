"""The recommendation: the cheapest accepted candidate within the accuracy tolerance."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd


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
