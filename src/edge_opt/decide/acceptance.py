"""A prepared candidate's record: what it is, what was measured, and the memory budgets'
verdict (``decide.budgets``); and how the dominance rule sees prepared candidates."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from edge_opt.candidates.columns import C
from edge_opt.candidates.plan import SweepPlan
from edge_opt.candidates.preparation import PreparedCandidate, runtime_mb
from edge_opt.candidates.record import CandidateResult
from edge_opt.decide.budgets import budget_figure_mb, judge_memory
from edge_opt.decide.dominance import Contender
from edge_opt.measure.memory import RssProbe
from edge_opt.measure.metrics import assemble_metrics
from edge_opt.measure.session import Timing


def contenders(prepared: Sequence[PreparedCandidate], plan: SweepPlan) -> list[Contender]:
    """The prepared candidates as the dominance rule sees them."""
    out = []
    for p in prepared:
        if p.built is None:
            continue
        figure = budget_figure_mb(p.size_bytes, p.peak_bytes, plan.memory_budget_metric)
        fits = figure is not None and figure <= plan.active_memory_budget_mb
        accuracy = p.accuracy.accuracy if p.accuracy is not None else None
        out.append(Contender(p.cid, accuracy, fits))
    return out


def candidate_record(
    p: PreparedCandidate,
    plan: SweepPlan,
    reference_predictions: torch.Tensor,
    timing: Timing | None,
    rss: RssProbe | None,
    measured_on: str | None = None,
) -> CandidateResult:
    """One candidate's record: what it is, what was measured, and the memory budgets' verdict."""
    identity = {
        C.candidate_id: p.cid,
        C.pruning_level: p.pruning_level,
        "precision": p.precision,
        "runtime": p.runtime,
        C.parameter_count: p.parameter_count,
        C.macs_per_sample: p.macs_per_sample,
        C.fine_tune_epochs: p.fine_tune_epochs,
        C.active_budget_mb: plan.active_memory_budget_mb,
        C.budget_metric: plan.memory_budget_metric,
        C.prepared_from_cache: p.from_cache,
        C.measure_seconds: p.seconds,
    }
    if p.error is not None or p.accuracy is None:
        return CandidateResult(
            **identity,
            status=p.status if p.status != "ok" else "failed",
            error=p.skipped or p.error,
            metrics=None,
            test_accuracy=None,
            accepted=False,
            budget_violations=dict.fromkeys(plan.memory_budgets_mb),
        )
    metrics = None
    if timing is not None:
        metrics = assemble_metrics(
            p.precision,
            p.accuracy,
            timing.latency,
            timing.throughput,
            p.size_bytes,
            plan.power_watts,
            plan.latency_multiplier,
            reference_predictions,
        )
    figure = budget_figure_mb(p.size_bytes, p.peak_bytes, plan.memory_budget_metric)
    verdict = judge_memory(figure, plan.memory_budgets_mb, plan.active_memory_budget_mb)
    speedup = timing.speedup if timing is not None else None
    return CandidateResult(
        **identity,
        status="ok",
        error=None,
        metrics=metrics,
        test_accuracy=p.test_accuracy,
        accepted=verdict.accepted,
        budget_violations=verdict.violations,
        peak_activation_bytes=p.peak_bytes,
        runtime_memory_mb=runtime_mb(p),
        ref_top1_agreement=p.ref_agreement,
        ref_max_abs_error=p.ref_max_abs_error,
        measured_peak_rss_mb=rss.cold_mb if rss is not None else None,
        measured_peak_rss_warm_mb=rss.warm_mb if rss is not None else None,
        rss_note=rss.note if rss is not None else "not measured",
        speedup_vs_baseline=speedup[0] if speedup else None,
        speedup_q25=speedup[1] if speedup else None,
        speedup_q75=speedup[2] if speedup else None,
        measured_on=measured_on if metrics is not None else None,
    )
