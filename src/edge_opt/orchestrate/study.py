"""The run's candidates: the grid (pruning levels x precisions x runtimes) or a search, then the
target device's own timing when a device node is part of the cluster.

Stages (as ``run_status.json`` names them): ``pruning`` (the levels' variants), ``preparing``,
``timing``, ``memory`` (the sweep's phases), or ``searching``; then ``device``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from edge_opt.candidates.plan import SweepPlan
from edge_opt.candidates.record import CandidateResult
from edge_opt.compress.recovery import Recovery, RecoveryLog
from edge_opt.compress.variants import VariantSettings
from edge_opt.config.schema import ExperimentConfig
from edge_opt.measure.metrics import first_inputs
from edge_opt.orchestrate.baseline import Baseline, RunInputs
from edge_opt.orchestrate.context import RunContext
from edge_opt.orchestrate.device import Cluster, DeviceRun, measure_on_device
from edge_opt.orchestrate.preflight import harness_settings
from edge_opt.orchestrate.prepare import CandidateInputs, recover_variants
from edge_opt.orchestrate.sweep import SweepHooks, execute_sweep
from edge_opt.runtimes.base import RuntimeModel

ResultCallback = Callable[[CandidateResult, int, int], None]


@dataclass(frozen=True)
class Study:
    """Every candidate's record, its built runtime model, and the float models behind them."""

    records: list[CandidateResult]
    built: dict[str, RuntimeModel]
    variants: dict[Any, nn.Module]  # pruning level (grid) or candidate id (search) -> model
    plan: SweepPlan
    device_samples: dict[str, list[float]] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    recovery: dict[float, RecoveryLog] = field(default_factory=dict)  # grid: per level

    def float_model(self, record: CandidateResult) -> nn.Module:
        key = record.candidate_id if record.candidate_id in self.variants else record.pruning_level
        return self.variants[key]


def sweep_plan(cfg: ExperimentConfig, power_watts: float, fingerprint: str) -> SweepPlan:
    """The candidates the config asks for, and every setting that decides their records."""
    return SweepPlan(
        pruning_levels=tuple(cfg.pruning_levels),
        precisions=tuple(cfg.precisions),
        harness=harness_settings(cfg),
        runtimes=tuple(cfg.runtimes),
        power_watts=power_watts,
        calibration_batches=cfg.calibration_batches,
        memory_budgets_mb=tuple(cfg.memory_budgets_mb),
        active_memory_budget_mb=cfg.active_memory_budget_mb,
        memory_budget_metric=cfg.memory_budget_metric,
        latency_multiplier=cfg.latency_multiplier,
        fine_tune_epochs=cfg.fine_tune_epochs,
        quantization_backend=cfg.quantization_backend,
        latency_batch_size=cfg.latency_batch_size,
        throughput_repeats=cfg.throughput_repeats,
        measure_rss=cfg.measure_peak_rss,
        data_fingerprint=fingerprint,
        instances=cfg.benchmark_instances,
        latency_budget_ms=cfg.latency_budget_ms,
    )


def candidate_inputs(inputs: RunInputs, plan: SweepPlan, context: RunContext) -> CandidateInputs:
    loaders = inputs.loaders
    return CandidateInputs(
        loaders.val,
        loaders.test,
        inputs.calibration,
        first_inputs(loaders.val, plan.latency_batch_size),
        next(iter(loaders.val))[0],
        inputs.input_shape,
        context.tmp,
    )


def run_study(
    cfg: ExperimentConfig,
    inputs: RunInputs,
    baseline: Baseline,
    cluster: Cluster,
    context: RunContext,
    plan: SweepPlan,
    on_candidate: ResultCallback | None = None,
) -> Study:
    """The grid's or the search's candidates, then the device's timing of those it can run."""
    if cfg.search.strategy == "optuna":
        study = _search(cfg, inputs, baseline, cluster, context, plan, on_candidate)
    else:
        study = _grid(cfg, inputs, baseline, cluster, context, plan, on_candidate)
    if cluster.resource is None:
        return study
    context.on_stage("device")
    run = DeviceRun(
        cluster.resource,
        first_inputs(inputs.loaders.val, plan.latency_batch_size),
        plan.harness,
        plan.instances,
    )
    records, samples = measure_on_device(
        cluster.executor, run, study.records, study.built, context.cache
    )
    context.sink.device_samples(samples)
    return replace(study, records=records, device_samples=samples)


def _grid(
    cfg: ExperimentConfig,
    inputs: RunInputs,
    baseline: Baseline,
    cluster: Cluster,
    context: RunContext,
    plan: SweepPlan,
    on_candidate: ResultCallback | None,
) -> Study:
    context.on_stage("pruning")
    start = time.perf_counter()
    settings = variant_settings(cfg, inputs.input_shape)
    recovered = recover_variants(
        baseline.model,
        cfg.pruning_levels,
        (inputs.loaders.train, inputs.loaders.val),
        settings,
        cluster.executor,
        context.cache,
        inputs.train_fingerprint(cfg),
        context.progress,
    )
    pruned = time.perf_counter()
    variants = recovered.models
    outcome = execute_sweep(
        plan,
        variants,
        candidate_inputs(inputs, plan, context),
        baseline.val.predictions,
        executor=cluster.executor,
        cache=context.cache,
        hooks=SweepHooks(context.progress, context.on_stage, context.sink.rows, on_candidate),
        measured_on=cluster.host.describe(),
    )
    timings = {"pruning": pruned - start, "sweep": time.perf_counter() - pruned}
    return Study(
        outcome.records, outcome.built, dict(variants), plan, None, timings, recovered.recovery
    )


def recovery_of(cfg: ExperimentConfig) -> Recovery:
    """The config's ``recovery`` section as ``compress.recovery`` takes it (epochs per level
    come from ``fine_tune_epochs``)."""
    r = cfg.recovery
    return Recovery(
        0, r.distillation, r.temperature, r.distill_weight, r.steps, r.early_stop_patience
    )


def variant_settings(cfg: ExperimentConfig, input_shape: tuple[int, int, int]) -> VariantSettings:
    """How the config's pruning levels are made and recovered."""
    return VariantSettings(
        cfg.fine_tune_epochs,
        cfg.learning_rate,
        cfg.seed,
        input_shape,
        cfg.pruning_scope,
        cfg.channel_multiple,
        cfg.train_threads,
        recovery_of(cfg),
    )


def _search(
    cfg: ExperimentConfig,
    inputs: RunInputs,
    baseline: Baseline,
    cluster: Cluster,
    context: RunContext,
    plan: SweepPlan,
    on_candidate: ResultCallback | None,
) -> Study:
    from edge_opt.search.engine import search_from_config

    context.on_stage("searching")
    start = time.perf_counter()
    searched = search_from_config(
        cfg,
        plan,
        baseline.model,
        inputs.loaders,
        baseline.val.predictions,
        inputs.calibration,
        context.tmp,
        context.sink.rows,
        on_candidate,
        cluster.host.describe(),
    )
    timings = {"search": time.perf_counter() - start}
    return Study(
        searched.records, dict(searched.built), dict(searched.variants), plan, None, timings
    )
