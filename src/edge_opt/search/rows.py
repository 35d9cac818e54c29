"""The rows a search adds to ``sweep_results.csv``: screened trials, search columns, order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from edge_opt.candidates.plan import SweepPlan
from edge_opt.candidates.preparation import frame_rows
from edge_opt.measure.memory import BYTES_PER_MB
from edge_opt.search.screen import TrialRecord, ratio_columns
from edge_opt.search.space import ChannelGroup


def search_columns(
    rec: TrialRecord | None, stage: str, groups: Sequence[ChannelGroup] = ()
) -> dict[str, Any]:
    if rec is None:  # the reference: nothing pruned
        return {
            "search_trial": None,
            "search_generation": None,
            "search_stage": stage,
            **ratio_columns(dict.fromkeys((g.name for g in groups), 0.0)),
        }
    return {
        "search_trial": rec.number,
        "search_generation": rec.generation,
        "search_stage": stage,
        "search_accuracy_subset": rec.subset_accuracy,
        "latency_estimate_ms": rec.latency_estimate_ms,
        "roofline_ms_host": rec.roofline_ms,
        **ratio_columns(rec.ratios),
    }


def screened_row(rec: TrialRecord, plan: SweepPlan) -> dict[str, Any]:
    status = {"failed": "failed", "unsupported": "skipped"}.get(rec.stage, "screened")
    p = rec.prepared
    row: dict[str, Any] = {
        "candidate_id": rec.candidate_id,
        "pruning_level": rec.level,
        "precision": rec.precision,
        "runtime": rec.runtime,
        "status": status,
        "error": rec.reason,
        "accepted": False,
        "active_budget_mb": plan.active_memory_budget_mb,
        "budget_metric": plan.memory_budget_metric,
        "fine_tune_epochs": plan.fine_tune_epochs,
    }
    if p is not None:
        row.update(
            parameter_count=p.common["parameter_count"],
            macs_per_sample=p.common["macs_per_sample"],
        )
        if p.accuracy is not None:
            row.update(model_size_bytes=p.size_bytes, memory_mb=p.size_bytes / BYTES_PER_MB)
    return {**row, **search_columns(rec, rec.stage)}


def ordered_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in trial order, the reference first (timed rows are finished before screened
    ones of the same generation)."""

    def order(row: dict[str, Any]) -> float:
        trial = row.get("search_trial")
        return -1.0 if trial is None else float(trial)

    return frame_rows(sorted(rows, key=order))
