"""The records a search adds: the search's facts of a trial, screened trials, and their order."""

from __future__ import annotations

from collections.abc import Sequence

from edge_opt.candidates.plan import SweepPlan
from edge_opt.candidates.record import CandidateResult, SearchInfo
from edge_opt.search.screen import TrialRecord
from edge_opt.search.space import ChannelGroup


def search_info(
    rec: TrialRecord | None, stage: str, groups: Sequence[ChannelGroup] = ()
) -> SearchInfo:
    """What a row says of its trial; ``rec`` None: the reference (nothing pruned)."""
    if rec is None:
        return SearchInfo(
            stage, ratios=dict.fromkeys((g.name for g in groups), 0.0), reference=True
        )
    return SearchInfo(
        stage,
        trial=rec.number,
        generation=rec.generation,
        accuracy_subset=rec.subset_accuracy,
        latency_estimate_ms=rec.latency_estimate_ms,
        roofline_ms_host=rec.roofline_ms,
        ratios=dict(rec.ratios),
    )


def screened_record(rec: TrialRecord, plan: SweepPlan) -> CandidateResult:
    """A trial that was not timed: why (``error``), and what is known (size, architecture)."""
    status = {"failed": "failed", "unsupported": "skipped"}.get(rec.stage, "screened")
    p = rec.prepared
    return CandidateResult(
        candidate_id=rec.candidate_id,
        pruning_level=rec.level,
        precision=rec.precision,
        runtime=rec.runtime,
        status=status,
        error=rec.reason,
        parameter_count=p.parameter_count if p is not None else None,
        macs_per_sample=p.macs_per_sample if p is not None else None,
        fine_tune_epochs=plan.fine_tune_epochs,
        metrics=None,
        test_accuracy=None,
        accepted=False,
        active_budget_mb=plan.active_memory_budget_mb,
        budget_metric=plan.memory_budget_metric,
        size_bytes=p.size_bytes if p is not None and p.accuracy is not None else None,
        search=search_info(rec, rec.stage),
    )


def in_trial_order(records: Sequence[CandidateResult]) -> list[CandidateResult]:
    """Records in trial order, the reference first (timed records are finished before screened
    ones of the same generation)."""

    def order(record: CandidateResult) -> float:
        trial = record.search.trial if record.search is not None else None
        return -1.0 if trial is None else float(trial)

    return sorted(records, key=order)
