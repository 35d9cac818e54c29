"""The recommendation: the cheapest accepted candidate within the accuracy tolerance.

One rule, applied to three tables: this host's measurements (``recommend_candidate``), the
target device's own measurements when a device node timed candidates (``recommend_on_device``),
and the per-candidate means over seeds (``recommend_across_seeds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C


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
    cost_col: str = C.latency_p50_ms,
    source: str = "",
) -> Recommendation:
    """Among accepted candidates within ``max_accuracy_drop`` of the baseline's validation
    accuracy, the one with the lowest ``cost_col``; or none, with the reason. ``source`` says
    whose accuracy that is (``p00-fp32-eager's, fine-tuned like every candidate``): the
    reasons name it beside the number, so it is never taken for the accuracy logged after
    training alone."""
    named = f" ({source})" if source else ""

    def rec(cid: str | None, reason: str) -> Recommendation:
        return Recommendation(cid, reason, baseline_accuracy, max_accuracy_drop, cost_col)

    ok = df[df[C.status] == "ok"] if C.status in df.columns else df
    accepted = ok[ok[C.accepted].astype(bool)] if not ok.empty else ok
    if accepted.empty:
        budget = df[C.active_budget_mb].iloc[0] if not df.empty else float("nan")
        slow = 0
        if C.violates_latency_budget in ok.columns:
            slow = int(ok[C.violates_latency_budget].fillna(False).astype(bool).sum())
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
    eligible = accepted[accepted[C.accuracy] >= floor - 1e-12]
    if eligible.empty:
        best = accepted.sort_values("accuracy", ascending=False).iloc[0]
        return rec(
            None,
            f"{len(accepted)} candidate(s) fit the budget, but none is within "
            f"{max_accuracy_drop:g} of the baseline's validation accuracy "
            f"{baseline_accuracy:.4f}{named}; the most accurate accepted one is "
            f"{best['candidate_id']} at {best['accuracy']:.4f}",
        )
    best = eligible.sort_values([cost_col, "accuracy"], ascending=[True, False]).iloc[0]
    return rec(
        str(best[C.candidate_id]),
        f"lowest {cost_col} ({best[cost_col]:.4g}) among {len(eligible)} accepted candidate(s) "
        f"within {max_accuracy_drop:g} of the baseline's validation accuracy "
        f"({baseline_accuracy:.4f}{'; ' + source if source else ''}); its accuracy is "
        f"{best['accuracy']:.4f} and its size "
        f"{best['memory_mb']:.4f} MB",
    )


def recommend_on_device(
    sweep: pd.DataFrame, reference_accuracy: float, max_drop: float, source: str = ""
) -> Recommendation | None:
    """The recommendation from the device's own measurements, when it measured an accepted
    candidate; ``None`` otherwise (this host's measurements decide, as without a device)."""
    if C.device_latency_p50_ms not in sweep.columns:
        return None
    measured = sweep[sweep[C.device_latency_p50_ms].notna()]
    if measured.empty or not measured[C.accepted].astype(bool).any():
        return None
    rec = recommend_candidate(
        measured, reference_accuracy, max_drop, C.device_latency_p50_ms, source
    )
    where = str(measured[C.device_measured_on].dropna().iloc[0])
    runtimes = ", ".join(sorted(set(measured[C.runtime])))
    return Recommendation(
        rec.candidate_id,
        f"measured on the target device {where}, among the {len(measured)} candidate(s) it "
        f"can run ({runtimes}): {rec.reason}",
        rec.baseline_accuracy,
        rec.max_accuracy_drop,
        rec.cost_column,
    )


def recommend_across_seeds(
    summary: pd.DataFrame,
    reference_accuracies: Sequence[float],
    per_seed_picks: Sequence[str | None],
    max_accuracy_drop: float,
    budget_mb: float,
) -> dict[str, Any]:
    """The single-run rule over the seed means: among candidates accepted under every seed
    whose mean validation accuracy is within ``max_accuracy_drop`` of the mean reference
    accuracy, the lowest mean p50; with how many seeds picked it on their own.

    Args:
        summary: one row per candidate over the seeds (``summarize_seeds``).
        reference_accuracies: each seed's reference validation accuracy.
        per_seed_picks: each seed's own recommendation, in seed order.
        max_accuracy_drop: the config's tolerance.
        budget_mb: the active memory budget (for the reason when nothing fits).

    Returns:
        ``candidate_id`` (or None), ``reason``, ``baseline_accuracy_mean``, ``per_seed`` and
        ``seeds_agreeing``.
    """
    n = len(reference_accuracies)
    baseline = float(sum(reference_accuracies) / n) if n else float("nan")
    frame = pd.DataFrame(
        {
            C.candidate_id: summary.get(C.candidate_id, pd.Series(dtype=str)),
            C.status: [
                "ok" if ok == n_seeds else "failed"
                for ok, n_seeds in zip(
                    summary.get("seeds_ok", []), summary.get("seeds", []), strict=True
                )
            ],
            C.accepted: summary.get("accepted_all", pd.Series(dtype=bool)),
            C.accuracy: summary.get("accuracy_mean", pd.Series(dtype=float)),
            C.latency_p50_ms: summary.get("latency_p50_ms_mean", pd.Series(dtype=float)),
            C.memory_mb: summary.get("memory_mb_mean", pd.Series(dtype=float)),
            C.active_budget_mb: budget_mb,
        }
    )
    rec = recommend_candidate(frame, baseline, max_accuracy_drop)
    agreeing = sum(1 for pick in per_seed_picks if pick == rec.candidate_id)
    reason = f"over the means of {n} seed(s), accepted under every seed: {rec.reason}"
    if rec.candidate_id is not None:
        reason += f"; {agreeing} of {n} seed(s) picked it on their own"
    return {
        C.candidate_id: rec.candidate_id,
        "reason": reason,
        "baseline_accuracy_mean": baseline,
        "per_seed": list(per_seed_picks),
        "seeds_agreeing": agreeing,
    }
