"""The run's verdict, decided in one place: budgets, frontiers, the pick, and what flips it.

``decide`` applies the latency budget to the records (on the device's p95 where a device node
measured, else this host's), draws the accuracy/latency, accuracy/energy and accuracy/size
frontiers over accepted candidates, takes the reference accuracy (``p00-fp32-eager``: the same
total training as every candidate), recommends (the device's own measurements first, when it
measured an accepted candidate), explains what decided the pick and what would flip it, and
says when the accuracy tolerance is finer than the validation split can resolve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C
from edge_opt.candidates.plan import REFERENCE_ID
from edge_opt.candidates.record import CandidateResult, records_frame
from edge_opt.decide.budgets import BUDGET_METRICS, apply_latency_budget
from edge_opt.decide.explain import Decision, explain_decision
from edge_opt.decide.frontier import pareto_frontier
from edge_opt.decide.recommend import Recommendation, recommend_candidate, recommend_on_device
from edge_opt.decide.target import TargetAnswer, TargetContext, target_answer
from edge_opt.decide.tolerance import tolerance_note


@dataclass(frozen=True)
class DecisionSettings:
    """The device class the verdict is for: its budgets and the accuracy tolerance."""

    max_accuracy_drop: float
    active_memory_budget_mb: float
    memory_budget_metric: str = "model"
    latency_budget_ms: float | None = None
    pareto_use_ci: bool = False
    # The target device when it is another machine than the one that timed (its projected
    # p95 then decides the latency budget); None: the target is this machine.
    projected_target: str | None = None


@dataclass(frozen=True)
class Verdict:
    """Everything decided about a run's candidates."""

    records: list[CandidateResult]  # with the latency budget applied
    latency_frontier: list[str]
    energy_frontier: list[str]
    memory_frontier: list[str]
    reference_accuracy: float
    recommendation: Recommendation
    decision: Decision | None
    tolerance_note: str | None = None  # the tolerance is finer than the accuracy's noise
    target: TargetAnswer | None = None  # the verdict's answer for the target device

    def recommendation_dict(self) -> dict[str, Any]:
        decision = self.decision.to_dict() if self.decision is not None else None
        return {
            **self.recommendation.to_dict(),
            "decision": decision,
            "tolerance_note": self.tolerance_note,
            "target": self.target.to_dict() if self.target is not None else None,
        }


def check_latency_budget(
    records: Sequence[CandidateResult], budget_ms: float | None, target: str | None = None
) -> list[CandidateResult]:
    """Each record with its latency-budget check (``apply_latency_budget``'s rule); unchanged
    without a budget."""
    if budget_ms is None or not records:
        return list(records)
    frame = apply_latency_budget(records_frame(records), budget_ms, target)
    out = []
    for record, (_, row) in zip(records, frame.iterrows(), strict=True):
        figure = row[C.latency_budget_figure]
        violates = row[C.violates_latency_budget]
        out.append(
            replace(
                record,
                accepted=bool(row[C.accepted]),
                latency_budget_checked=True,
                latency_budget_figure_ms=None if _missing(figure) else float(figure),
                latency_budget_on=None
                if _missing(row[C.latency_budget_on])
                else str(row[C.latency_budget_on]),
                violates_latency_budget=None if _missing(violates) else bool(violates),
            )
        )
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def reference_accuracy(frame: pd.DataFrame, baseline_val_accuracy: float) -> float:
    """Validation accuracy of ``p00-fp32-eager`` (the same total training as every candidate),
    or the baseline's when that candidate has none."""
    if frame.empty:
        return baseline_val_accuracy
    row = frame[frame[C.candidate_id] == REFERENCE_ID]
    if row.empty or row.iloc[0][C.status] != "ok" or pd.isna(row.iloc[0].get(C.accuracy)):
        return baseline_val_accuracy
    return float(row.iloc[0][C.accuracy])


def reference_source(frame: pd.DataFrame) -> str:
    """Whose accuracy ``reference_accuracy`` gives, for the reasons that quote it."""
    fallback = float("nan")
    if reference_accuracy(frame, fallback) is fallback:  # the baseline's, passed through
        return "the trained baseline's: no fine-tuned reference was measured"
    return f"{REFERENCE_ID}'s, fine-tuned like every candidate"


def _ids(front: pd.DataFrame) -> list[str]:
    return front[C.candidate_id].tolist() if not front.empty else []


def decide(
    records: Sequence[CandidateResult],
    settings: DecisionSettings,
    baseline_val_accuracy: float,
    target: TargetContext | None = None,
) -> Verdict:
    """The verdict over ``records`` (see the module's rule); with ``target``, also what the
    pick will do on the target device (``decide.target``)."""
    checked = check_latency_budget(records, settings.latency_budget_ms, settings.projected_target)
    frame = records_frame(checked)
    use_ci = settings.pareto_use_ci
    reference = reference_accuracy(frame, baseline_val_accuracy)
    source = reference_source(frame)
    recommendation = recommend_on_device(
        frame, reference, settings.max_accuracy_drop, source
    ) or recommend_candidate(frame, reference, settings.max_accuracy_drop, C.latency_p50_ms, source)
    decision = explain_decision(
        frame,
        recommendation.candidate_id,
        reference,
        settings.max_accuracy_drop,
        recommendation.cost_column,
        settings.active_memory_budget_mb,
        BUDGET_METRICS[settings.memory_budget_metric],
        settings.latency_budget_ms,
    )
    return Verdict(
        checked,
        _ids(pareto_frontier(frame, C.latency_p50_ms, use_ci)),
        _ids(pareto_frontier(frame, C.energy_proxy_j, use_ci)),
        _ids(pareto_frontier(frame, C.memory_mb, use_ci)),
        reference,
        recommendation,
        decision,
        tolerance_note(frame, settings.max_accuracy_drop),
        target_answer(frame, recommendation.candidate_id, target) if target else None,
    )
