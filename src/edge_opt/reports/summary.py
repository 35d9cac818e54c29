"""The machine-readable verdict of a run (``summary.json``) and the frontier tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C
from edge_opt.reports.result import RunResult

MIB = 2**20


def frontier_frame(sweep: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """Frontier rows in frontier order; headers only when empty."""
    if not ids:
        return sweep.iloc[0:0]
    indexed = sweep.set_index(C.candidate_id, drop=False)
    return indexed.loc[ids].reset_index(drop=True)


def build_summary(result: RunResult) -> dict[str, Any]:
    """The machine-readable verdict of a run (summary.json)."""
    sweep = result.sweep_frame()
    ok = sweep[sweep[C.status] == "ok"] if not sweep.empty else sweep
    accepted = ok[ok[C.accepted].astype(bool)] if not ok.empty else ok
    rec_id = result.recommendation[C.candidate_id]
    rec_row = None
    if rec_id is not None:
        rec_row = sweep[sweep[C.candidate_id] == rec_id].iloc[0].to_dict()
    base_row = None
    if not sweep.empty and (sweep[C.candidate_id] == result.baseline[C.candidate_id]).any():
        base_row = sweep[sweep[C.candidate_id] == result.baseline[C.candidate_id]].iloc[0].to_dict()
    cfg = result.config
    return {
        "status": "ok",
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "wall_seconds": round(result.timings_s.get("total", float("nan")), 2),
        "dataset": {
            **{k: result.data[k] for k in ("name", "source", "sizes", "input_shape")},
            **{k: result.data[k] for k in ("class_names", "skipped_images") if k in result.data},
        },
        "model": result.baseline["model"],
        "baseline": {**result.baseline, "metrics": base_row},
        "study_rows": len(sweep),
        "ok_rows": len(ok),
        "failed_rows": int((sweep[C.status] == "failed").sum()) if not sweep.empty else 0,
        "skipped_rows": int((sweep[C.status] == "skipped").sum()) if not sweep.empty else 0,
        "accepted_rows": len(accepted),
        "rejected_rows": len(ok) - len(accepted),
        "memory_budgets_mb": cfg["memory_budgets_mb"],
        "active_memory_budget_mb": cfg["active_memory_budget_mb"],
        "budget_constrains": {
            "model": "memory_mb (serialized model size)",
            "runtime": "runtime_memory_mb (serialized size + peak live activations)",
        }[cfg.get("memory_budget_metric", "model")],
        C.latency_batch_size: cfg[C.latency_batch_size],
        "benchmark_threads": cfg["benchmark_threads"],
        C.latency_multiplier: 1.0 / cfg["cpu_frequency_scale"],
        "best_accuracy_accepted": float(accepted[C.accuracy].max()) if not accepted.empty else None,
        "lowest_latency_p50_ms_accepted": float(accepted[C.latency_p50_ms].min())
        if not accepted.empty
        else None,
        "recommended": rec_id,
        "recommended_reason": result.recommendation["reason"],
        "decision": result.recommendation.get("decision"),
        "tolerance_note": result.recommendation.get("tolerance_note"),
        "target": result.recommendation.get("target"),
        "latency_budget_ms": cfg.get("latency_budget_ms"),
        "recommended_metrics": rec_row,
        "pareto_frontier_latency": result.latency_frontier,
        "pareto_frontier_energy": result.energy_frontier,
        "pareto_use_ci": cfg["pareto_use_ci"],
        "exported_models": result.exported_models,
        "target_device": result.device_profile.get("name"),
        "edge_constraints": {p["subject"]: p["edge_constraints"] for p in result.hardware_profiles},
        "projection": projection_summary(result),
        "hardware": {
            "baseline": {
                C.candidate_id: result.hardware_baseline.candidate_id,
                **result.hardware_baseline.summary,
            },
            "recommended": None
            if result.hardware_recommended is None
            else {
                C.candidate_id: result.hardware_recommended.candidate_id,
                **result.hardware_recommended.summary,
            },
        },
        "warnings": result.warnings,
        "timings_s": {k: round(v, 2) for k, v in result.timings_s.items()},
    }


def projection_summary(result: RunResult) -> dict[str, Any] | None:
    if not result.projection or not result.projection.get("validation"):
        return None
    v = result.projection["validation"]
    if not v.get("candidates"):
        return {
            "column": result.projection["column"],
            "target": result.projection["target"],
            "loo_candidates": 0,
            "note": "not validated: needs at least 3 pruning levels per runtime and precision",
        }
    return {
        "column": result.projection["column"],
        "target": result.projection["target"],
        "loo_candidates": v["candidates"],
        "within_10pct": v["within_10pct"],
        "within_25pct": v["within_25pct"],
        "median_abs_error_pct": v["median_abs_error_pct"],
    }
