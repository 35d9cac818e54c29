"""The whole job as named stages: inputs -> baseline -> candidates -> hardware -> verdict ->
deployables -> profiles -> ``RunResult``.

``run_pipeline`` computes (each stage a function with typed input and output; what must
survive a crash goes to the run's sink); ``run`` also writes every report, in a protected run
directory. The stages do not know about each other: only this module calls them.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from edge_opt.analysis.hardware import precision_tradeoff_table
from edge_opt.analysis.per_class import per_class_for_run
from edge_opt.candidates.columns import C
from edge_opt.candidates.record import CandidateResult, records_frame
from edge_opt.compress.training import EpochStats
from edge_opt.config.schema import ExperimentConfig
from edge_opt.decide.verdict import DecisionSettings, Verdict, decide
from edge_opt.infra.cache import ArtifactCache, state_dict_bytes
from edge_opt.infra.environment import sha256_file
from edge_opt.measure.energy import PowerSource, power_source
from edge_opt.measure.process import (
    load_average,
    release_free_heap,
    single_arena,
    stabilize_allocator,
)
from edge_opt.models.zoo import count_parameters
from edge_opt.orchestrate.baseline import (
    Baseline,
    RunInputs,
    load_inputs,
    train_baseline,
    training_note,
)
from edge_opt.orchestrate.context import CHECKPOINT, RunContext, StageClock
from edge_opt.orchestrate.describe import (
    deployable_warnings,
    environment_record,
    observations,
    timing_warnings,
)
from edge_opt.orchestrate.device import Cluster, open_cluster
from edge_opt.orchestrate.hardware import (
    HardwareReport,
    Profiles,
    analyse_hardware,
    profile_run,
    target_context,
)
from edge_opt.orchestrate.hardware import project as project_onto_target
from edge_opt.orchestrate.preflight import seed_everything
from edge_opt.orchestrate.study import Study, run_study, sweep_plan
from edge_opt.reports.result import RunResult

__all__ = ["RunContext", "decision_settings", "deployable_ids", "run_pipeline"]

log = logging.getLogger(__name__)

CandidateCallback = Callable[[CandidateResult, int, int], None]


def run_pipeline(
    cfg: ExperimentConfig,
    on_candidate: CandidateCallback | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    context: RunContext | None = None,
) -> RunResult:
    """Run the experiment described by ``cfg`` and return its typed result.

    Writes, as it goes, what must survive a crash into ``context.staging`` (by default
    ``cfg.output_dir``): the resolved config, the baseline checkpoint and ``sweep_results.csv``
    (rewritten after every candidate). With a context from ``run``, finished work also goes to
    the run directory's cache, which ``--resume`` reuses.

    Raises:
        EdgeOptError: bad data, model or settings (the message says what to change).
    """
    if context is None:
        out = Path(cfg.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="edge-opt-work-") as tmp:
            return run_pipeline(
                cfg, on_candidate, on_epoch, RunContext(out, Path(tmp), ArtifactCache(None))
            )
    cluster = open_cluster(cfg.executor)  # local: Ray is not imported
    try:
        return _run_stages(cfg, on_candidate, on_epoch, context, cluster)
    finally:
        cluster.close()


@dataclass(frozen=True)
class _Start:
    """What a run records before its first stage."""

    started: datetime
    clock: float
    load_before: list[float] | None
    allocator: dict[str, Any]
    power: PowerSource


def _run_stages(
    cfg: ExperimentConfig,
    on_candidate: CandidateCallback | None,
    on_epoch: Callable[[EpochStats], None] | None,
    context: RunContext,
    cluster: Cluster,
) -> RunResult:
    # The energy proxy's one source of power figures: power_source.
    power = power_source(cfg.power_watts)
    # Memory the stages free goes back to the kernel: one arena, trimmed at every stage change
    # (StageClock); the heap still keeps freed memory within a stage, as timing needs.
    arenas = "1 (mallopt M_ARENA_MAX)" if single_arena() else "glibc's default"
    trimmed = release_free_heap()
    allocator = {
        **stabilize_allocator(),
        "arenas": arenas,
        "between_stages": "malloc_trim(0)" if trimmed else "not trimmed",
    }
    start = _Start(datetime.now(UTC), time.perf_counter(), load_average(), allocator, power)
    clock = StageClock(context.on_stage)
    context = replace(context, on_stage=clock)
    context.sink.config(cfg)
    seed_everything(cfg.seed)
    torch.backends.quantized.engine = cfg.quantization_backend
    timings: dict[str, float] = {}

    clock("data")
    t = time.perf_counter()
    inputs = load_inputs(cfg, fingerprinted=context.cache.enabled)
    timings["data"] = time.perf_counter() - t

    clock("training")
    t = time.perf_counter()
    baseline = train_baseline(cfg, inputs, context.cache, on_epoch, context.progress)
    checkpoint = context.sink.checkpoint(state_dict_bytes(baseline.model))
    timings["training"] = time.perf_counter() - t

    plan = sweep_plan(cfg, power.watts, inputs.fingerprint)
    study = run_study(cfg, inputs, baseline, cluster, context, plan, on_candidate)
    timings.update(study.timings)

    clock("analysis")
    timings.update({f"sweep_{name}": seconds for name, seconds in clock.phases.items()})
    t = time.perf_counter()
    hardware = analyse_hardware(cfg, inputs, baseline, study, plan.harness, power.watts)
    records, projection = project_onto_target(study.records, hardware)
    target = target_context(hardware, projection)
    settings = decision_settings(cfg, None if target.here else target.name)
    verdict = decide(records, settings, baseline.val_accuracy, target)
    timings["hardware"] = time.perf_counter() - t
    log.info(
        "recommended: %s (%s)",
        verdict.recommendation.candidate_id,
        verdict.recommendation.reason,
    )
    exported = context.sink.deployables(study.built, deployable_ids(verdict), inputs.data_info())
    if cfg.search.strategy == "grid":
        context.sink.variants(study.variants)

    t = time.perf_counter()
    profiles = profile_run(
        cfg, inputs, baseline.model, study, hardware, verdict.recommendation.candidate_id
    )
    timings["profiling"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start.clock
    parts = _RunParts(inputs, baseline, study, hardware, verdict, profiles, projection)
    return describe_run(cfg, parts, start, exported, checkpoint, timings)


def decision_settings(
    cfg: ExperimentConfig, projected_target: str | None = None
) -> DecisionSettings:
    return DecisionSettings(
        cfg.max_accuracy_drop,
        cfg.active_memory_budget_mb,
        cfg.memory_budget_metric,
        cfg.latency_budget_ms,
        cfg.pareto_use_ci,
        projected_target,
    )


def deployable_ids(verdict: Verdict) -> list[str]:
    """The recommended candidate first, then every frontier point (latency, energy)."""
    rec = verdict.recommendation.candidate_id
    ids = [rec] if rec else []
    for front in (verdict.latency_frontier, verdict.energy_frontier):
        ids += [c for c in front if c not in ids]
    return ids


@dataclass(frozen=True)
class _RunParts:
    """Every stage's output, for the result."""

    inputs: RunInputs
    baseline: Baseline
    study: Study
    hardware: HardwareReport
    verdict: Verdict
    profiles: Profiles
    projection: dict[str, Any]


def describe_run(
    cfg: ExperimentConfig,
    parts: _RunParts,
    start: _Start,
    exported: list[dict[str, Any]],
    checkpoint: Path,
    timings: dict[str, float],
) -> RunResult:
    """The typed result of the run: every stage's output as plain data."""
    inputs, verdict, hardware = parts.inputs, parts.verdict, parts.hardware
    sweep = records_frame(verdict.records)
    ok_rows = sweep[sweep[C.status] == "ok"] if not sweep.empty else sweep
    environment = environment_record(
        cfg, ok_rows, start.allocator, start.power, start.load_before, parts.study.plan.harness
    )
    warnings = list(inputs.splits.warnings) + observations(sweep, environment)
    warnings += timing_warnings(ok_rows, cfg)
    if verdict.recommendation.candidate_id is None:
        warnings.append(f"no recommendation: {verdict.recommendation.reason}")
    warnings += deployable_warnings(exported)
    if verdict.tolerance_note is not None:
        warnings.append(verdict.tolerance_note)
    per_class = per_class_for_run(
        inputs.splits,
        inputs.loaders.val,
        parts.baseline.val,
        parts.study.built,
        verdict.recommendation,
    )
    return RunResult(
        config=cfg.to_dict(),
        environment=environment,
        data=_data_record(inputs),
        per_class_accuracy=per_class,
        training=parts.baseline.history,
        baseline=_baseline_record(cfg, parts, checkpoint),
        sweep=sweep.to_dict("records"),
        latency_frontier=verdict.latency_frontier,
        energy_frontier=verdict.energy_frontier,
        memory_frontier=verdict.memory_frontier,
        recommendation=verdict.recommendation_dict(),
        hardware_baseline=hardware.baseline,
        hardware_recommended=hardware.of(verdict.recommendation.candidate_id),
        hardware_candidates=hardware.candidates,
        exported_models=exported,
        device_profile=hardware.target.to_dict(),
        host_profile=hardware.host.to_dict(),
        hardware_profiles=parts.profiles.tables,
        roofline_layers=parts.profiles.roofline_layers.to_dict("records"),
        roofline_candidates=parts.profiles.roofline_candidates,
        projection=parts.projection,
        precision_tradeoffs=precision_tradeoff_table(sweep).to_dict("records"),
        warnings=warnings,
        timings_s=timings,
        recovery=[log.to_dict() for log in parts.study.recovery.values()],
        started_at=start.started.isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _data_record(inputs: RunInputs) -> dict[str, Any]:
    splits = inputs.splits
    return {
        "name": splits.name,
        "source": splits.source,
        "sizes": splits.sizes(),
        "input_shape": list(splits.input_shape),
        "num_classes": splits.num_classes,
        "files": [{"path": str(p), "sha256": sha256_file(p)} for p in splits.files],
        **inputs.data_info(),
    }


def _baseline_record(cfg: ExperimentConfig, parts: _RunParts, checkpoint: Path) -> dict[str, Any]:
    baseline = parts.baseline
    return {
        "model": parts.inputs.built.label,
        "parameter_count": count_parameters(baseline.model),
        "val_accuracy": baseline.val_accuracy,
        "test_accuracy": baseline.test_accuracy,
        "candidate_id": parts.hardware.base_row[C.candidate_id],
        "checkpoint": CHECKPOINT,
        "checkpoint_sha256": sha256_file(checkpoint),
        "reference_val_accuracy": parts.verdict.reference_accuracy,
        "training": training_note(cfg, baseline.history),
    }
