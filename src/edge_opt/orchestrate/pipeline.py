"""The whole job: config -> data -> baseline -> sweep -> frontiers -> hardware -> RunResult.

``run_pipeline`` computes; ``run`` also writes every report. Each stage's inputs and outputs
are typed; the stages do not know about each other.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn

from edge_opt.analysis.candidates import analyse_candidate, profile_candidate, project_candidates
from edge_opt.analysis.devices import get_device_profile, host_profile
from edge_opt.analysis.hardware import precision_tradeoff_table
from edge_opt.analysis.per_class import per_class_for_run
from edge_opt.analysis.profiling import roofline_points
from edge_opt.candidates.plan import SweepPlan, candidate_id
from edge_opt.candidates.preparation import VariantSettings, prune_variants
from edge_opt.compress.training import EpochStats, train_model
from edge_opt.config.loading import dump_config
from edge_opt.config.schema import ExperimentConfig
from edge_opt.data.formats import load_dataset
from edge_opt.data.splits import (
    DataSplits,
    Loaders,
    calibration_inputs,
    make_loaders,
    split_dataset,
)
from edge_opt.decide.explain import apply_latency_budget, explain_decision
from edge_opt.decide.frontier import pareto_frontier
from edge_opt.decide.recommend import recommend_candidate
from edge_opt.deploy.deployables import export_deployables, save_variants
from edge_opt.infra.artifacts import atomic_write_bytes, atomic_write_json, atomic_write_text
from edge_opt.infra.cache import (
    ArtifactCache,
    content_key,
    load_state_dict_bytes,
    sha256_bytes,
    state_dict_bytes,
)
from edge_opt.infra.environment import describe_environment, has_native_fp16, sha256_file
from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.infra.runlog import RUN_LOG, log_to_file
from edge_opt.infra.runstatus import now_iso
from edge_opt.measure.energy import power_source
from edge_opt.measure.metrics import collect_metrics, evaluate_accuracy, first_inputs
from edge_opt.measure.process import load_average, stabilize_allocator
from edge_opt.models.zoo import BuiltModel, count_parameters
from edge_opt.orchestrate.distributed import (
    Cluster,
    cross_device_validation,
    measure_on_device,
    open_cluster,
    prepare_candidates_remotely,
    prepare_variants_remotely,
    recommend_on_device,
)
from edge_opt.orchestrate.executors.base import this_node
from edge_opt.orchestrate.preflight import (
    build_configured_model,
    check_data_fits_model,
    harness_settings,
    preflight,
    profile_model,
    seed_everything,
)
from edge_opt.orchestrate.result import RunResult
from edge_opt.orchestrate.sweep import CandidateResult, execute_sweep
from edge_opt.reports.tables import percent
from edge_opt.runtimes.base import RuntimeModel

if TYPE_CHECKING:
    from edge_opt.infra.rundir import RunDir
    from edge_opt.orchestrate.multiseed import MultiSeedResult

__all__ = [
    "build_configured_model",
    "check_data_fits_model",
    "preflight",
    "profile_model",
    "run",
    "run_experiment",
    "run_pipeline",
]

log = logging.getLogger(__name__)

LATENCY_COST = "latency_p50_ms"
ENERGY_COST = "energy_proxy_j"
CHECKPOINT = "models/baseline_fp32.pt"
DEVICE_SAMPLES = "device_latency_samples.json"  # every per-call time the device measured
TORCH_DEVICE = "cpu"  # every measurement runs on this machine's CPU; `device` is the target
FP16_SLOW_RATIO = 3.0
SWEEP_PHASES = ("tasks", "preparing", "timing", "memory", "device")
DRIFT_NOTE = 0.15  # a drift of the reference kernel beyond this is told to the reader


def _observations(sweep: pd.DataFrame, environment: dict[str, Any]) -> list[str]:
    """Warnings a reader must see next to the numbers."""
    notes = []
    ok = sweep[sweep["status"] == "ok"] if not sweep.empty else sweep
    for _, row in sweep[sweep["status"] == "failed"].iterrows():
        notes.append(f"{row['candidate_id']} failed: {row['error']}")
    ok = ok[ok["runtime"] == "eager"] if "runtime" in ok else ok  # fp16 check: eager kernels
    if not ok.empty and {"fp16", "fp32"} <= set(ok["precision"]):
        fp32 = ok[ok["precision"] == "fp32"].set_index("pruning_level")[LATENCY_COST]
        fp16 = ok[ok["precision"] == "fp16"].set_index("pruning_level")[LATENCY_COST]
        common = fp32.index.intersection(fp16.index)
        if len(common):
            ratio = float((fp16[common] / fp32[common]).median())
            native = has_native_fp16(environment["cpu"])
            if ratio > FP16_SLOW_RATIO or not native:
                notes.append(
                    f"fp16 ran {ratio:.1f}x the fp32 p50 latency (median over pruning levels); "
                    f"this CPU {'reports' if native else 'lacks'} avx512_fp16, and PyTorch's "
                    "eager CPU kernels largely emulate fp16: do not read CPU fp16 timings as "
                    "what an fp16-native accelerator would do"
                )
    return notes


@dataclass(frozen=True)
class RunContext:
    """Where one run writes: its staging folder, scratch space, cache, a stage hook, and where
    the long stages report how far they are (``edge_opt.infra.progress``)."""

    staging: Path
    tmp: Path
    cache: ArtifactCache
    on_stage: Callable[[str], None] = lambda _name: None
    progress: Progress = field(default_factory=NullProgress)


@dataclass
class _StageClock:
    """Passes stage changes on, and times the sweep's own phases between them."""

    notify: Callable[[str], None]
    phases: dict[str, float] = field(default_factory=dict)
    current: tuple[str, float] | None = None

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.current is not None and self.current[0] in SWEEP_PHASES:
            self.phases[self.current[0]] = now - self.current[1]
        self.current = (name, now)
        self.notify(name)


def _where_measured(sweep: pd.DataFrame, cluster: Cluster | None) -> pd.DataFrame:
    """``measured_on``: the machine that took each row's latency figures, as it reports
    itself (the device's own figures are the ``device_*`` columns)."""
    node = cluster.host if cluster is not None else this_node()
    frame = sweep.copy()
    timed = frame["latency_p50_ms"].notna() if "latency_p50_ms" in frame else False
    frame["measured_on"] = None
    frame.loc[timed, "measured_on"] = node.describe()
    return frame


def data_fingerprint(splits: DataSplits) -> str:
    """sha256 of every split's tensors: what a cached result was computed on."""
    digest = hashlib.sha256()
    for split in (splits.train, splits.val, splits.test):
        for tensor in split.tensors:
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _training_key(cfg: ExperimentConfig, built: BuiltModel, fingerprint: str) -> str:
    checkpoint = built.checkpoint
    return content_key(
        "baseline",
        {
            "model": cfg.model.model_dump(mode="json"),
            "checkpoint_sha256": sha256_file(Path(checkpoint)) if checkpoint else None,
            "initial_sha256": sha256_bytes(state_dict_bytes(built.model)),
            "data": fingerprint,
            "batch_size": cfg.batch_size,
            "dataloader_seed": cfg.effective_dataloader_seed,
            "epochs": cfg.epochs,
            "learning_rate": cfg.learning_rate,
            "seed": cfg.seed,
            "train_threads": cfg.train_threads,
        },
    )


def _train_baseline(
    cfg: ExperimentConfig,
    built: BuiltModel,
    loaders: Loaders,
    fingerprint: str,
    cache: ArtifactCache,
    on_epoch: Callable[[EpochStats], None] | None,
    progress: Progress | None = None,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train the baseline, or reuse the cached result of the very same training."""
    key = _training_key(cfg, built, fingerprint)
    entry = cache.get("baseline", key)
    model = copy.deepcopy(built.model)
    if entry is not None:
        model.load_state_dict(load_state_dict_bytes(entry.read("weights.pt")))
        log.info("baseline: reused from the cache (the same training finished before)")
        return model.eval(), list(entry.meta["history"])
    log.info(
        "training %s for %d epoch(s) on %d images%s",
        built.label,
        cfg.epochs,
        len(loaders.train.dataset),
        f" from checkpoint {built.checkpoint}" if built.checkpoint else "",
    )
    history: list[dict[str, Any]] = []

    def record_epoch(stats: EpochStats) -> None:
        history.append(asdict(stats))
        if on_epoch is not None:
            on_epoch(stats)

    trained = train_model(
        model,
        loaders.train,
        cfg.epochs,
        cfg.learning_rate,
        TORCH_DEVICE,
        seed=cfg.seed,
        on_epoch=record_epoch,
        val_loader=loaders.val,
        progress=progress,
        threads=cfg.train_threads,
    )
    cache.put("baseline", key, {"history": history}, {"weights.pt": state_dict_bytes(trained)})
    return trained, history


def _training_note(cfg: ExperimentConfig, history: list[dict[str, Any]]) -> dict[str, Any]:
    """How much training every candidate had, and whether the baseline had converged."""
    losses = [h["val_loss"] for h in history if h.get("val_loss") is not None]
    falling = len(losses) >= 2 and losses[-1] < losses[-2]
    return {
        "baseline_epochs": cfg.epochs,
        "fine_tune_epochs": cfg.fine_tune_epochs,
        "total_epochs_per_candidate": cfg.epochs + cfg.fine_tune_epochs,
        "val_loss_per_epoch": losses,
        "val_loss_still_falling": falling if len(losses) >= 2 else None,
    }


def _sweep_plan(cfg: ExperimentConfig, power_watts: float, fingerprint: str) -> SweepPlan:
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


def _timing_warnings(ok_rows: pd.DataFrame, cfg: ExperimentConfig) -> list[str]:
    """What a reader must know about the timing: real load seen, precision not reached."""
    if ok_rows.empty or "noisy" not in ok_rows:
        return []
    warnings = []
    noisy = ok_rows[ok_rows["noisy"].astype(bool)]
    if not noisy.empty:
        signals = sorted({s for s in noisy["noisy_signal"].fillna("") if s})
        warnings.append(
            f"{len(noisy)} candidate(s) were timed while the machine was loaded, even after "
            f"retries: {', '.join(noisy['candidate_id'])}; signal: {' | '.join(signals)}; "
            "their latencies are flagged `noisy` (rerun on a quiet machine)"
        )
    drift = ok_rows["host_drift"].abs().max() if "host_drift" in ok_rows else None
    if drift is not None and pd.notna(drift) and drift > DRIFT_NOTE:
        signed = ok_rows.loc[ok_rows["host_drift"].abs().idxmax(), "host_drift"]
        warnings.append(
            f"this core's speed drifted during timing (the reference kernel's typical time moved "
            f"{signed:+.0%} from start to end): ratios measured side by side hold; absolute "
            "times mix " + ("slower" if signed > 0 else "faster") + " and earlier phases"
        )
    if "slower_than_less_pruned" in ok_rows:
        slow = ok_rows[ok_rows["slower_than_less_pruned"].fillna(False).astype(bool)]
        if not slow.empty:
            pairs = ", ".join(
                f"{r.candidate_id} (slower than {r.faster_less_pruned})" for r in slow.itertuples()
            )
            warnings.append(
                f"pruning more made {len(slow)} candidate(s) slower, beyond the CIs: {pairs}; "
                "fewer MACs did not mean less time there (try channel_multiple: 8 or 16)"
            )
    stops = ok_rows["latency_stop_reason"]
    loose = ok_rows[~stops.isin(["converged", "instance_spread", "dominated"])]
    if len(loose):
        worst = loose["latency_p50_precision"].max()
        warnings.append(
            f"the p50 of {len(loose)} of {len(ok_rows)} candidate(s) did not reach +-"
            f"{percent(cfg.benchmark_precision)} ({loose['latency_stop_reason'].iloc[0]}; widest "
            f"95% CI +-{worst:.1%}): compare those p50s with their CIs"
        )
    spread = ok_rows[stops == "instance_spread"]
    if len(spread):
        worst = spread["latency_p50_precision"].max()
        warnings.append(
            f"{len(spread)} of {len(ok_rows)} candidate(s) have p50 CIs wider than +-"
            f"{percent(cfg.benchmark_precision)} (widest +-{worst:.1%}) because their "
            "independently built instances run at different speeds; more rounds would not "
            "narrow them: "
            "compare those p50s with their CIs"
        )
    return warnings


def _reference_accuracy(sweep: pd.DataFrame, baseline_val_acc: float) -> float:
    """Validation accuracy of p00-fp32-eager (same total training as every candidate)."""
    if sweep.empty:
        return baseline_val_acc
    row = sweep[sweep["candidate_id"] == candidate_id(0.0, "fp32", "eager")]
    if row.empty or row.iloc[0]["status"] != "ok" or pd.isna(row.iloc[0].get("accuracy")):
        return baseline_val_acc
    return float(row.iloc[0]["accuracy"])


def run_pipeline(
    cfg: ExperimentConfig,
    on_candidate: Callable[[CandidateResult, int, int], None] | None = None,
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
    cluster = open_cluster(cfg.executor)  # None: the local executor (Ray is not imported)
    try:
        return _run_stages(cfg, on_candidate, on_epoch, context, cluster)
    finally:
        if cluster is not None:
            cluster.close()


def _run_stages(
    cfg: ExperimentConfig,
    on_candidate: Callable[[CandidateResult, int, int], None] | None,
    on_epoch: Callable[[EpochStats], None] | None,
    context: RunContext,
    cluster: Cluster | None,
) -> RunResult:
    started = datetime.now(UTC)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    out, cache = context.staging, context.cache
    if cluster is not None and not cache.enabled:  # tasks hand their results over the cache
        cache = ArtifactCache(context.tmp / "cache")
    stage = _StageClock(context.on_stage)
    atomic_write_text(out / "config_resolved.yaml", dump_config(cfg))
    load_before = load_average()
    allocator = stabilize_allocator()
    harness = harness_settings(cfg)
    power = power_source(cfg.power_watts)  # the energy proxy's one source of power figures
    seed_everything(cfg.seed)
    built_models: dict[str, RuntimeModel] = {}
    torch.backends.quantized.engine = cfg.quantization_backend

    # --- model and data ---------------------------------------------------------------------
    stage("data")
    t = time.perf_counter()
    torch.manual_seed(cfg.seed)
    built = build_configured_model(cfg)
    raw = load_dataset(cfg.dataset, built.input_shape, cfg.data_dir)
    splits = split_dataset(raw, cfg.train_subset, cfg.val_subset, cfg.test_subset, cfg.seed)
    loaders = make_loaders(splits, cfg.batch_size, cfg.effective_dataloader_seed, cfg.num_workers)
    calibration = calibration_inputs(splits, cfg.batch_size, cfg.calibration_batches, cfg.seed)
    log.info("data: %s from %s; sizes %s", splits.name, splits.source, splits.sizes())
    for warning in splits.warnings:
        log.warning("data: %s", warning)
    check_data_fits_model(splits, built)
    fingerprint = data_fingerprint(splits) if cache.enabled else ""
    timings["data"] = time.perf_counter() - t

    # --- baseline ---------------------------------------------------------------------------
    stage("training")
    t = time.perf_counter()
    baseline, history = _train_baseline(
        cfg, built, loaders, fingerprint, cache, on_epoch, context.progress
    )
    checkpoint = atomic_write_bytes(out / CHECKPOINT, state_dict_bytes(baseline))
    val_result = evaluate_accuracy(baseline, loaders.val)
    val_acc = val_result.accuracy
    test_acc = evaluate_accuracy(baseline, loaders.test).accuracy
    log.info("baseline: validation accuracy %.4f, test accuracy %.4f", val_acc, test_acc)
    timings["training"] = time.perf_counter() - t

    # --- sweep ------------------------------------------------------------------------------
    variants: dict[Any, nn.Module]  # by pruning level (grid) or candidate id (search)
    if cfg.search.strategy == "optuna":
        from edge_opt.search.engine import search_from_config

        stage("searching")
        t = time.perf_counter()
        plan = _sweep_plan(cfg, power.watts, fingerprint)
        searched = search_from_config(
            cfg,
            plan,
            baseline,
            loaders,
            val_result.predictions,
            calibration,
            context.tmp,
            out,
            on_candidate,
        )
        sweep, variants = searched.frame, dict(searched.variants)
        built_models.update(searched.built)
        timings["search"] = time.perf_counter() - t
    else:
        stage("pruning")
        t = time.perf_counter()
        train_fingerprint = fingerprint + f"|bs={cfg.batch_size}|dl={cfg.effective_dataloader_seed}"
        if cluster is not None:
            prepare_variants_remotely(
                cluster.executor,
                baseline,
                cfg.pruning_levels,
                loaders.train,
                VariantSettings(
                    cfg.fine_tune_epochs,
                    cfg.learning_rate,
                    cfg.seed,
                    splits.input_shape,
                    cfg.pruning_scope,
                    cfg.channel_multiple,
                    cfg.train_threads,
                ),
                cache,
                train_fingerprint,
                context.progress,
            )
        variants = prune_variants(
            baseline,
            cfg.pruning_levels,
            loaders.train,
            cfg.fine_tune_epochs,
            cfg.learning_rate,
            TORCH_DEVICE,
            cfg.seed,
            splits.input_shape,
            cfg.pruning_scope,
            cache=cache,
            train_fingerprint=train_fingerprint,
            channel_multiple=cfg.channel_multiple,
            progress=context.progress,
            train_threads=cfg.train_threads,
        )
        timings["pruning"] = time.perf_counter() - t
        t = time.perf_counter()
        plan = _sweep_plan(cfg, power.watts, fingerprint)
        failures: dict[str, str] = {}
        if cluster is not None:
            stage("tasks")  # the preparation's parallel part: its own timing phase
            failures = prepare_candidates_remotely(
                cluster.executor,
                plan,
                variants,
                loaders.val,
                loaders.test,
                calibration,
                first_inputs(loaders.val, plan.latency_batch_size),
                splits.input_shape,
                cache,
                context.progress,
            )
        sweep = execute_sweep(
            plan,
            variants,
            loaders.val,
            calibration,
            reference_predictions=val_result.predictions,
            input_shape=splits.input_shape,
            test_loader=loaders.test,
            output_dir=out,
            workdir=context.tmp,
            cache=cache,
            keep_models=built_models,
            on_result=on_candidate,
            on_stage=stage,
            failures=failures,
            progress=context.progress,
        )
        sweep = _where_measured(sweep, cluster)
        if cluster is not None and cluster.resource is not None:
            stage("device")
            sweep, device_samples = measure_on_device(
                cluster.executor,
                cluster.resource,
                sweep,
                built_models,
                first_inputs(loaders.val, plan.latency_batch_size),
                harness,
                cfg.benchmark_instances,
                cache,
            )
            atomic_write_json(out / DEVICE_SAMPLES, device_samples)
        timings["sweep"] = time.perf_counter() - t
    stage("analysis")
    timings.update({f"sweep_{name}": seconds for name, seconds in stage.phases.items()})

    # --- selection --------------------------------------------------------------------------
    sweep = apply_latency_budget(sweep, cfg.latency_budget_ms)
    latency_front = pareto_frontier(sweep, LATENCY_COST, cfg.pareto_use_ci)
    energy_front = pareto_frontier(sweep, ENERGY_COST, cfg.pareto_use_ci)
    memory_front = pareto_frontier(sweep, "memory_mb", cfg.pareto_use_ci)
    # Fair reference: the unpruned fp32 candidate had the same total training as every other.
    reference_acc = _reference_accuracy(sweep, val_acc)
    recommendation = recommend_on_device(
        sweep, reference_acc, cfg.max_accuracy_drop
    ) or recommend_candidate(sweep, reference_acc, cfg.max_accuracy_drop, LATENCY_COST)
    log.info("recommended: %s (%s)", recommendation.candidate_id, recommendation.reason)
    decision = explain_decision(
        sweep,
        recommendation.candidate_id,
        reference_acc,
        cfg.max_accuracy_drop,
        recommendation.cost_column,
        cfg.active_memory_budget_mb,
        "memory_mb" if cfg.memory_budget_metric == "model" else "runtime_memory_mb",
        cfg.latency_budget_ms,
    )
    deploy_ids = [recommendation.candidate_id] if recommendation.candidate_id else []
    for front in (latency_front, energy_front):
        deploy_ids += [c for c in front.get("candidate_id", []) if c not in deploy_ids]
    data_info = {
        "input_shape": list(splits.input_shape),
        "num_classes": splits.num_classes,
        "normalisation": {"mean": splits.mean, "std": splits.std},
        **splits.describe(),
    }
    exported = export_deployables(built_models, deploy_ids, out / "models", data_info)
    per_class = per_class_for_run(splits, loaders.val, val_result, built_models, recommendation)
    if cfg.search.strategy == "grid":
        save_variants(variants, out / "models" / "variants")

    # --- hardware ---------------------------------------------------------------------------
    t = time.perf_counter()
    rows = {r["candidate_id"]: r for r in sweep.to_dict("records")}
    base_id = candidate_id(0.0, "fp32", "eager")
    base_row = rows.get(base_id)
    if base_row is None or base_row["status"] != "ok":
        metrics = collect_metrics(
            baseline,
            loaders.val,
            TORCH_DEVICE,
            power.watts,
            "fp32",
            cfg.latency_multiplier,
            cfg.benchmark_repeats,
            benchmark_warmup=cfg.benchmark_warmup,
            benchmark_trials=cfg.benchmark_trials,
            latency_batch_size=cfg.latency_batch_size,
            throughput_repeats=cfg.throughput_repeats,
            settings=harness,
        )
        base_row = {"candidate_id": "baseline-fp32", "precision": "fp32", **metrics.to_dict()}
    host = host_profile(cfg.benchmark_threads, cfg.power_watts, cfg.refresh_host_profile)
    target = get_device_profile(cfg.device, cfg.benchmark_threads, cfg.power_watts)
    if cfg.memory_bandwidth_gbps is not None:
        target = target.with_bandwidth(cfg.memory_bandwidth_gbps)
    # Latencies were measured here: utilisation compares with this host unless the user says.
    bandwidth = cfg.memory_bandwidth_gbps or host.memory_bandwidth_gbps.value
    hw_base = analyse_candidate(baseline, base_row, cfg, splits.input_shape, bandwidth, target)
    # Every measured candidate gets its own layer table and summary (dtype-aware bytes).
    hw_candidates = [
        analyse_candidate(
            variants[
                row["candidate_id"] if row["candidate_id"] in variants else row["pruning_level"]
            ],
            row,
            cfg,
            splits.input_shape,
            bandwidth,
            target,
        )
        for row in rows.values()
        if row["status"] == "ok" and pd.notna(row.get("latency_ms"))
    ]
    hw_rec = next((h for h in hw_candidates if h.candidate_id == recommendation.candidate_id), None)
    tradeoffs = precision_tradeoff_table(sweep)
    timings["hardware"] = time.perf_counter() - t

    # --- profiling, roofline, projection ----------------------------------------------------
    t = time.perf_counter()
    profiles = [
        profile_candidate(baseline, "fp32", hw_base, base_row, cfg, splits.input_shape, target)
    ]
    if hw_rec is not None:
        rec_model = built_models[hw_rec.candidate_id]
        profiles.append(
            profile_candidate(
                rec_model.eager.model,
                hw_rec.precision,
                hw_rec,
                rows[hw_rec.candidate_id],
                cfg,
                splits.input_shape,
                target,
                rec_model.eager.prepare_input,
                rec_model.runtime,
            )
        )
    roofline_layers = roofline_points(hw_base.layerwise_frame(), target, "fp32")
    roofline_candidates = [
        {
            "candidate_id": h.candidate_id,
            "precision": h.precision,
            "intensity_macs_per_byte": h.summary["arithmetic_intensity_macs_per_byte"],
            "achieved_gmacs": h.summary["achieved_gmacs"],
            "target_knee_macs_per_byte": h.summary["target_knee_macs_per_byte"],
            "target_bound_regime": h.summary["target_bound_regime"],
        }
        for h in hw_candidates
    ]
    sweep, validation = project_candidates(sweep, hw_candidates, host, target)
    validation["cross_device"] = cross_device_validation(sweep)
    timings["profiling"] = time.perf_counter() - t

    environment = describe_environment(
        cfg.benchmark_threads, torch.backends.quantized.engine, cfg.train_threads
    )
    environment["allocator"] = allocator
    environment["power"] = asdict(power)
    environment["load_average_before"] = load_before
    environment["load_average_after"] = load_average()
    environment["timing_protocol"] = asdict(harness)
    ok_rows = sweep[sweep["status"] == "ok"] if not sweep.empty else sweep
    if "noisy" in ok_rows:
        # Every candidate is retried with its round: the max is the number of rounds redone.
        environment["noisy_rounds_retried"] = int(ok_rows["noisy_retries"].max())
        noisy = ok_rows["noisy"].astype(bool)
        environment["noisy_candidates"] = ok_rows.loc[noisy, "candidate_id"].tolist()
        environment["host_reference_ms"] = float(ok_rows["host_reference_ms"].min())
    warnings = list(splits.warnings) + _observations(sweep, environment)
    warnings += _timing_warnings(ok_rows, cfg)
    if recommendation.candidate_id is None:
        warnings.append(f"no recommendation: {recommendation.reason}")
    timings["total"] = time.perf_counter() - clock
    return RunResult(
        config=cfg.to_dict(),
        environment=environment,
        data={
            "name": splits.name,
            "source": splits.source,
            "sizes": splits.sizes(),
            "input_shape": list(splits.input_shape),
            "num_classes": splits.num_classes,
            "files": [{"path": str(p), "sha256": sha256_file(p)} for p in splits.files],
            **data_info,
        },
        per_class_accuracy=per_class,
        training=history,
        baseline={
            "model": built.label,
            "parameter_count": count_parameters(baseline),
            "val_accuracy": val_acc,
            "test_accuracy": test_acc,
            "candidate_id": base_row["candidate_id"],
            "checkpoint": CHECKPOINT,
            "checkpoint_sha256": sha256_file(checkpoint),
            "reference_val_accuracy": reference_acc,
            "training": _training_note(cfg, history),
        },
        sweep=sweep.to_dict("records"),
        latency_frontier=latency_front["candidate_id"].tolist() if not latency_front.empty else [],
        energy_frontier=energy_front["candidate_id"].tolist() if not energy_front.empty else [],
        memory_frontier=memory_front["candidate_id"].tolist() if not memory_front.empty else [],
        recommendation={
            **recommendation.to_dict(),
            "decision": decision.to_dict() if decision is not None else None,
        },
        hardware_baseline=hw_base,
        hardware_recommended=hw_rec,
        hardware_candidates=hw_candidates,
        exported_models=exported,
        device_profile=target.to_dict(),
        host_profile=host.to_dict(),
        hardware_profiles=profiles,
        roofline_layers=roofline_layers.to_dict("records"),
        roofline_candidates=roofline_candidates,
        projection=validation,
        precision_tradeoffs=tradeoffs.to_dict("records"),
        warnings=warnings,
        timings_s=timings,
        started_at=started.isoformat(timespec="seconds"),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def run(
    cfg: ExperimentConfig,
    on_candidate: Callable[[CandidateResult, int, int], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: Sequence[str] = ("edge-opt", "run"),
    opened: RunDir | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """``run_pipeline`` then ``write_reports``, in a protected run directory.

    The run is built in ``<output_dir>/.edge-opt/staging`` and published into ``output_dir``
    only when every report file exists; ``run_status.json`` says ``running`` (pid, stage) until
    then. A finished run is replaced only with ``overwrite`` (and stays until the new one
    completes); an interrupted one is continued with ``resume``, reusing the cached training,
    pruning, fine-tuning, conversion, export and accuracy, then timing every candidate again.

    Raises:
        EdgeOptError: a refused output directory, bad data, model or settings.
        KeyboardInterrupt: on Ctrl-C (the status says ``interrupted`` and how to resume).
    """
    from edge_opt.reports.writer import write_reports

    with protected_run(cfg.output_dir, overwrite, resume, command, opened) as run_dir:
        warn_config_change(run_dir, cfg)
        context = RunContext(
            run_dir.staging,
            run_dir.tmp,
            ArtifactCache(run_dir.cache_root),
            run_dir.stage,
            progress or NullProgress(),
        )
        result = run_pipeline(cfg, on_candidate, on_epoch, context)
        run_dir.stage("reports")
        write_reports(result, run_dir.staging)
    return result


def warn_config_change(run_dir: RunDir, cfg: ExperimentConfig) -> None:
    """On a resume, say which config keys differ from the interrupted run's."""
    changed = [k for k in run_dir.remember_config(cfg.to_dict()) if k != "output_dir"]
    if changed:
        log.warning(
            "resuming with a config that differs from the interrupted run's in %s: the work "
            "these keys affect is done again (the cache keys differ), the rest is reused",
            ", ".join(changed),
        )


@contextlib.contextmanager
def protected_run(
    output_dir: str | Path,
    overwrite: bool,
    resume: bool,
    command: Sequence[str],
    opened: RunDir | None = None,
) -> Iterator[RunDir]:
    """Open and lock the run directory (or take ``opened``, already locked by the caller);
    publish its staging folder if the block completes.

    Every log record and Python warning of the block goes to the run's log (``run_dir.log``,
    published as ``run.log``; see ``edge_opt.infra.runlog``).

    On any exception the status records ``interrupted`` (Ctrl-C, SIGTERM) or ``failed`` with
    the error and the command that resumes; scratch space is removed on every exit path.
    """
    from edge_opt.infra.rundir import open_run_dir

    run_dir = opened or open_run_dir(
        output_dir, overwrite=overwrite, resume=resume, command=command
    )
    try:
        header = f"edge-opt run ({run_dir.mode}) in {run_dir.out}, pid {os.getpid()}"
        with log_to_file(run_dir.log, header):
            yield run_dir
        shutil.copyfile(run_dir.log, run_dir.staging / RUN_LOG)  # published with the run
        run_dir.publish()
        run_dir.set_status("complete", stage="done", finished_at=now_iso())
    except BaseException as exc:
        _record_failure(run_dir, exc)
        raise
    finally:
        run_dir.close()


def _record_failure(run_dir: RunDir, exc: BaseException) -> None:
    state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    error = (
        "interrupted (Ctrl-C or SIGTERM)"
        if state == "interrupted"
        else (f"{type(exc).__name__}: {exc}")
    )
    with contextlib.suppress(OSError):  # a full disk must not hide the original error
        run_dir.set_status(state, error=error[:2000], stage=run_dir.status.get("stage"))


def run_experiment(
    cfg: ExperimentConfig,
    on_candidate: Callable[[CandidateResult, int, int], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: Sequence[str] = ("edge-opt", "run"),
    opened: RunDir | None = None,
    progress: Progress | None = None,
) -> RunResult | MultiSeedResult:
    """What ``edge-opt run`` does: one run, or one per seed when ``seeds`` is set.

    ``opened``: the run directory, already opened with ``edge_opt.infra.rundir.open_run_dir`` (the
    CLI opens it before importing torch, so the status says ``running`` at once).
    ``progress``: how the long stages show how far they are (``edge_opt.infra.progress``).
    """
    options = {
        "overwrite": overwrite,
        "resume": resume,
        "command": command,
        "opened": opened,
        "progress": progress,
    }
    if cfg.seeds:
        from edge_opt.orchestrate.multiseed import run_multi_seed

        return run_multi_seed(cfg, on_candidate, on_epoch, **options)
    return run(cfg, on_candidate, on_epoch, **options)
