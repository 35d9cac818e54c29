"""The pruning x precision sweep: the only place that loops over candidates.

A candidate is (pruning level, precision, runtime) with a stable id (``p25-int8-eager``).
Three phases, so that timing is fair and nothing is lost:
1. *prepare* each candidate: convert, evaluate accuracy, size, activation liveness; its row is
   written to ``sweep_results.csv`` at once (a failure is a ``failed`` row with its error);
2. *time* all prepared candidates together in interleaved rounds (``edge_opt.harness``), at the
   latency batch and then at the throughput batch; speedups come from paired rounds;
3. *probe* each candidate's peak RSS in a fresh child process (after timing: children would
   disturb it).
"""

from __future__ import annotations

import copy
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.artifacts import atomic_write_csv
from edge_opt.cache import (
    ArtifactCache,
    content_key,
    load_state_dict_bytes,
    sha256_bytes,
    state_dict_bytes,
)
from edge_opt.energy import RaplReader
from edge_opt.errors import EdgeOptError
from edge_opt.hardware import estimate_layerwise_stats
from edge_opt.harness import HarnessSettings, LatencyStats, measure_interleaved, paired_speedup
from edge_opt.memory import BYTES_PER_MB, RssProber, peak_activation_bytes
from edge_opt.metrics import (
    AccuracyResult,
    CandidateMetrics,
    assemble_metrics,
    evaluate_accuracy,
    evaluate_predict,
    first_inputs,
    throughput_settings,
)
from edge_opt.model import count_parameters
from edge_opt.pruning import PruningScope, structured_channel_prune
from edge_opt.runtimes import RuntimeModel, build_runtime, unsupported_reason
from edge_opt.training import train_model

log = logging.getLogger(__name__)

DEFAULT_RUNTIME = "eager"
BUDGET_METRICS = {"model": "memory_mb", "runtime": "runtime_memory_mb"}


def candidate_id(pruning_level: float, precision: str, runtime: str = DEFAULT_RUNTIME) -> str:
    """Stable, filesystem-safe id: ``p25-int8-eager`` for 25% pruning, int8, eager."""
    return f"p{round(pruning_level * 100):02d}-{precision}-{runtime}"


def budget_column(budget_mb: float) -> str:
    return f"violates_{budget_mb:g}mb"


@dataclass(frozen=True)
class CandidateResult:
    """One row of the sweep: identity, outcome, measurements and budget verdicts."""

    candidate_id: str
    pruning_level: float
    precision: str
    runtime: str
    status: str  # "ok", "failed" or "skipped" (a runtime that cannot run the precision)
    error: str | None
    parameter_count: int | None
    macs_per_sample: int | None
    fine_tune_epochs: int
    metrics: CandidateMetrics | None
    test_accuracy: float | None
    accepted: bool
    active_budget_mb: float
    budget_metric: str = "model"
    budget_violations: Mapping[float, bool | None] = field(default_factory=dict)
    peak_activation_bytes: int | None = None
    runtime_memory_mb: float | None = None
    ref_top1_agreement: float | None = None
    ref_max_abs_error: float | None = None
    measured_peak_rss_mb: float | None = None
    measured_peak_rss_warm_mb: float | None = None
    rss_note: str | None = None
    speedup_vs_baseline: float | None = None
    speedup_q25: float | None = None
    speedup_q75: float | None = None
    measure_seconds: float = 0.0
    prepared_from_cache: bool = False

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "candidate_id": self.candidate_id,
            "pruning_level": self.pruning_level,
            "precision": self.precision,
            "runtime": self.runtime,
            "status": self.status,
            "error": self.error,
            "accepted": self.accepted,
            "active_budget_mb": self.active_budget_mb,
            "budget_metric": self.budget_metric,
            "parameter_count": self.parameter_count,
            "macs_per_sample": self.macs_per_sample,
            "fine_tune_epochs": self.fine_tune_epochs,
        }
        metrics = self.metrics.to_dict() if self.metrics else {}
        metrics.pop("precision", None)
        row.update(metrics)
        row.update(
            test_accuracy=self.test_accuracy,
            ref_top1_agreement=self.ref_top1_agreement,
            ref_max_abs_error=self.ref_max_abs_error,
            peak_activation_bytes=self.peak_activation_bytes,
            runtime_memory_mb=self.runtime_memory_mb,
            measured_peak_rss_mb=self.measured_peak_rss_mb,
            measured_peak_rss_warm_mb=self.measured_peak_rss_warm_mb,
            rss_note=self.rss_note,
            speedup_vs_baseline=self.speedup_vs_baseline,
            speedup_q25=self.speedup_q25,
            speedup_q75=self.speedup_q75,
        )
        for budget, violated in self.budget_violations.items():
            row[budget_column(budget)] = violated
        row["measure_seconds"] = self.measure_seconds
        row["prepared_from_cache"] = self.prepared_from_cache
        return row


def _fine_tune_seed(seed: int, level: float) -> int:
    # Per level, not per list position: adding a level must not change another level's result.
    return seed + 1000 + round(level * 100)


def variant_key(
    baseline_sha256: str,
    level: float,
    scope: str,
    fine_tune_epochs: int,
    learning_rate: float,
    seed: int,
    train_fingerprint: str,
    input_shape: tuple[int, int, int],
) -> str:
    """Cache key of one pruned (and fine-tuned) variant of a baseline."""
    return content_key(
        "variant",
        {
            "baseline_sha256": baseline_sha256,
            "level": level,
            "scope": scope,
            "fine_tune_epochs": fine_tune_epochs,
            "learning_rate": learning_rate,
            "seed": _fine_tune_seed(seed, level),
            "train": train_fingerprint,
            "input_shape": list(input_shape),
        },
    )


def prune_variants(
    base_model: nn.Module,
    pruning_levels: Sequence[float],
    train_loader: DataLoader | None = None,
    fine_tune_epochs: int = 0,
    learning_rate: float = 1e-3,
    device: str | torch.device = "cpu",
    seed: int = 0,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    scope: PruningScope = "uniform",
    *,
    cache: ArtifactCache | None = None,
    train_fingerprint: str = "",
) -> dict[float, nn.Module]:
    """One pruned and fine-tuned float model per level.

    Every level, 0 included, is fine-tuned for ``fine_tune_epochs``, so every candidate has
    had the same total training (a pruned level must not "beat" the baseline by training
    longer). With ``cache``, finished variants are reused (key: the baseline's weights, the
    level and every training setting) and rebuilt by pruning the baseline again (a
    deterministic structure) and loading the cached state dict (``weights_only``).
    """
    variants: dict[float, nn.Module] = {}
    example = torch.zeros(1, *input_shape)
    cache = cache or ArtifactCache(None)
    baseline_sha = sha256_bytes(state_dict_bytes(base_model)) if cache.enabled else ""
    for level in pruning_levels:
        pruned = structured_channel_prune(base_model, level, example, scope=scope)
        key = variant_key(
            baseline_sha,
            level,
            scope,
            fine_tune_epochs,
            learning_rate,
            seed,
            train_fingerprint,
            input_shape,
        )
        entry = cache.get("variant", key)
        if entry is not None:
            pruned.load_state_dict(load_state_dict_bytes(entry.read("weights.pt")))
            log.info("pruning level %.2f: reused from the cache", level)
        elif fine_tune_epochs > 0:
            if train_loader is None:
                raise ValueError("fine_tune_epochs > 0 needs a train_loader")
            log.info("fine-tuning pruning level %.2f for %d epoch(s)", level, fine_tune_epochs)
            pruned = train_model(
                pruned,
                train_loader,
                fine_tune_epochs,
                learning_rate,
                device,
                seed=_fine_tune_seed(seed, level),
            )
        if entry is None:
            cache.put("variant", key, {"level": level}, {"weights.pt": state_dict_bytes(pruned)})
        variants[level] = pruned.eval()
    return variants


def _first_batches(source: DataLoader | Iterable[torch.Tensor], count: int) -> list[torch.Tensor]:
    batches: list[torch.Tensor] = []
    for item in source:
        batches.append(item[0] if isinstance(item, list | tuple) else item)
        if len(batches) >= count:
            break
    return batches


@dataclass
class _Prepared:
    """A candidate after phase 1: built and evaluated, waiting to be timed."""

    common: dict[str, Any]
    built: RuntimeModel | None = None
    accuracy: AccuracyResult | None = None
    test_accuracy: float | None = None
    size_bytes: int = 0
    peak_bytes: int | None = None
    ref_agreement: float | None = None
    ref_max_abs_error: float | None = None
    error: str | None = None
    skipped: str | None = None
    seconds: float = 0.0
    from_cache: bool = False
    latency: LatencyStats | None = None
    throughput: LatencyStats | None = None
    rss: tuple[float | None, float | None, str] = (None, None, "not measured")

    @property
    def cid(self) -> str:
        return str(self.common["candidate_id"])

    def cache_meta(self, model_sha256: str) -> dict[str, Any]:
        """What a later run needs to skip evaluation (JSON; predictions in loader order)."""
        if self.accuracy is None:
            raise ValueError("only an evaluated candidate can be cached")
        return {
            "candidate_id": self.cid,
            "model_sha256": model_sha256,
            "correct": self.accuracy.correct,
            "total": self.accuracy.total,
            "predictions": self.accuracy.predictions.tolist(),
            "test_accuracy": self.test_accuracy,
            "size_bytes": self.size_bytes,
            "peak_bytes": self.peak_bytes,
            "ref_agreement": self.ref_agreement,
            "ref_max_abs_error": self.ref_max_abs_error,
            "seconds": self.seconds,
        }

    def restore(self, meta: Mapping[str, Any]) -> None:
        self.accuracy = AccuracyResult(
            int(meta["correct"]),
            int(meta["total"]),
            torch.tensor(meta["predictions"], dtype=torch.int64),
        )
        self.test_accuracy = meta["test_accuracy"]
        self.size_bytes = int(meta["size_bytes"])
        self.peak_bytes = meta["peak_bytes"]
        self.ref_agreement = meta["ref_agreement"]
        self.ref_max_abs_error = meta["ref_max_abs_error"]
        self.from_cache = True


@dataclass(frozen=True)
class _Reference:
    """The fixed batch every candidate's outputs are checked on, and the fp32 eager logits of
    the same pruning level on it."""

    batch: torch.Tensor
    logits: torch.Tensor


@dataclass(frozen=True)
class SweepPlan:
    """Everything that decides which candidates exist and how each is prepared and judged.

    The candidates are ``pruning_levels x precisions x runtimes``; ``run_sweep`` (the seed's
    signature) and the pipeline both build one and hand it to ``execute_sweep``.
    """

    pruning_levels: tuple[float, ...]
    precisions: tuple[str, ...]
    harness: HarnessSettings
    runtimes: tuple[str, ...] = (DEFAULT_RUNTIME,)
    power_watts: float = 5.0
    calibration_batches: int = 8
    memory_budgets_mb: tuple[float, ...] = ()
    active_memory_budget_mb: float = float("inf")
    memory_budget_metric: str = "model"
    latency_multiplier: float = 1.0
    fine_tune_epochs: int = 0
    quantization_backend: str = "x86"
    latency_batch_size: int = 1
    throughput_repeats: int = 10
    measure_rss: bool = True
    data_fingerprint: str = ""  # names the val/test/calibration data in cache keys
    instances: int = 1  # independently built instances of each candidate timed side by side

    def __post_init__(self) -> None:
        if self.memory_budget_metric not in BUDGET_METRICS:
            raise ValueError(
                f"memory_budget_metric: {self.memory_budget_metric!r} is not model or runtime"
            )

    def candidates(self) -> list[tuple[float, str, str]]:
        return list(itertools.product(self.pruning_levels, self.precisions, self.runtimes))

    def candidate_key(self, variant_sha256: str, precision: str, runtime: str) -> str:
        return content_key(
            "candidate",
            {
                "variant_sha256": variant_sha256,
                "precision": precision,
                "runtime": runtime,
                "backend": self.quantization_backend,
                "calibration_batches": self.calibration_batches,
                "data": self.data_fingerprint,
                "threads": self.harness.threads,
                "latency_batch_size": self.latency_batch_size,
            },
        )


@dataclass
class _SweepContext:
    """What every candidate of one sweep shares while it is prepared."""

    plan: SweepPlan
    val_loader: DataLoader
    test_loader: DataLoader | None
    calibration: list[torch.Tensor]
    latency_input: torch.Tensor
    input_shape: tuple[int, int, int]
    workdir: Path | None
    cache: ArtifactCache


def _evaluate(p: _Prepared, built: RuntimeModel, ctx: _SweepContext, ref: _Reference) -> None:
    p.accuracy = evaluate_predict(built.predict, ctx.val_loader)
    if ctx.test_loader is not None:
        p.test_accuracy = evaluate_predict(built.predict, ctx.test_loader).accuracy
    p.size_bytes = built.size_bytes
    logits = built.predict(ref.batch).float()
    p.ref_agreement = float((logits.argmax(1) == ref.logits.argmax(1)).float().mean())
    p.ref_max_abs_error = float((logits - ref.logits).abs().max())
    example = built.eager.prepare_input(ctx.latency_input)
    p.peak_bytes = peak_activation_bytes(built.eager.model, example).peak_bytes


def _prepare(
    float_model: nn.Module,
    variant_sha256: str,
    level: float,
    precision: str,
    runtime: str,
    ctx: _SweepContext,
    reference: _Reference,
    macs_per_sample: int,
) -> _Prepared:
    plan = ctx.plan
    prepared = _Prepared(
        common={
            "candidate_id": candidate_id(level, precision, runtime),
            "pruning_level": level,
            "precision": precision,
            "runtime": runtime,
            "parameter_count": count_parameters(float_model),
            "macs_per_sample": macs_per_sample,
            "fine_tune_epochs": plan.fine_tune_epochs,
        }
    )
    reason = unsupported_reason(runtime, precision)
    if reason is not None:
        prepared.skipped = reason
        return prepared
    start = time.perf_counter()
    key = plan.candidate_key(variant_sha256, precision, runtime)
    entry = ctx.cache.get("candidate", key)
    folder = ctx.workdir / prepared.cid if ctx.workdir is not None else None

    def build(artifact: Path | None) -> RuntimeModel:
        return build_runtime(
            runtime,
            float_model,
            precision,
            ctx.calibration,
            ctx.latency_input,
            plan.harness.threads,
            plan.quantization_backend,
            folder,
            artifact=artifact,
        )

    try:
        cached_file = entry is not None and "model.onnx" in entry.meta["files"]
        artifact = entry.path("model.onnx") if entry is not None and cached_file else None
        built = build(artifact)
        model_sha = sha256_bytes(state_dict_bytes(built.eager.model))
        if entry is not None and entry.meta.get("model_sha256") == model_sha:
            prepared.restore(entry.meta)
        else:
            if entry is not None:
                log.warning(
                    "%s: the rebuilt model differs from its cached one; re-evaluating", prepared.cid
                )
                built = build(None)
            _evaluate(prepared, built, ctx, reference)
            prepared.seconds = time.perf_counter() - start
            copies = {"model.onnx": built.artifact} if built.artifact is not None else None
            ctx.cache.put("candidate", key, prepared.cache_meta(model_sha), copies=copies)
        prepared.built = built
    except (EdgeOptError, RuntimeError) as exc:
        log.warning("%s failed: %s", prepared.cid, exc)
        prepared.built, prepared.error = None, f"{type(exc).__name__}: {exc}"
    prepared.seconds = time.perf_counter() - start
    return prepared


def _runtime_mb(p: _Prepared) -> float | None:
    if p.peak_bytes is None:
        return None
    return (p.size_bytes + p.peak_bytes) / BYTES_PER_MB


def _result(
    p: _Prepared,
    plan: SweepPlan,
    reference: torch.Tensor,
    speedup: tuple[float, float, float] | None,
) -> CandidateResult:
    budgets, active = plan.memory_budgets_mb, plan.active_memory_budget_mb
    base = {
        **p.common,
        "active_budget_mb": active,
        "budget_metric": plan.memory_budget_metric,
        "prepared_from_cache": p.from_cache,
    }
    if p.error is not None or p.accuracy is None:
        return CandidateResult(
            **base,
            status="skipped" if p.skipped else "failed",
            error=p.skipped or p.error,
            metrics=None,
            test_accuracy=None,
            accepted=False,
            budget_violations=dict.fromkeys(budgets),
            measure_seconds=p.seconds,
        )
    metrics = None
    if p.latency is not None and p.throughput is not None:
        metrics = assemble_metrics(
            p.common["precision"],
            p.accuracy,
            p.latency,
            p.throughput,
            p.size_bytes,
            plan.power_watts,
            plan.latency_multiplier,
            reference,
        )
    runtime_mb = _runtime_mb(p)
    model_mb = p.size_bytes / BYTES_PER_MB
    constrained = model_mb if plan.memory_budget_metric == "model" else runtime_mb
    violations = {b: None if constrained is None else constrained > b for b in budgets}
    # The seed's rule: rejected = size > active budget (which need not be a listed budget).
    return CandidateResult(
        **base,
        status="ok",
        error=None,
        metrics=metrics,
        test_accuracy=p.test_accuracy,
        accepted=constrained is not None and constrained <= active,
        budget_violations=violations,
        peak_activation_bytes=p.peak_bytes,
        runtime_memory_mb=runtime_mb,
        ref_top1_agreement=p.ref_agreement,
        ref_max_abs_error=p.ref_max_abs_error,
        measured_peak_rss_mb=p.rss[0],
        measured_peak_rss_warm_mb=p.rss[1],
        rss_note=p.rss[2],
        speedup_vs_baseline=speedup[0] if speedup else None,
        speedup_q25=speedup[1] if speedup else None,
        speedup_q75=speedup[2] if speedup else None,
        measure_seconds=p.seconds,
    )


def _pending_row(p: _Prepared, budgets: Sequence[float], active: float) -> dict[str, Any]:
    """Phase-1 row written at once: accuracy and size known, latency still to be timed."""
    status = "skipped" if p.skipped else "failed" if p.error else "timing_pending"
    row = {
        **p.common,
        "status": status,
        "error": p.skipped or p.error,
        "active_budget_mb": active,
    }
    if p.accuracy is not None:
        row.update(
            accuracy=p.accuracy.accuracy,
            test_accuracy=p.test_accuracy,
            model_size_bytes=p.size_bytes,
            memory_mb=p.size_bytes / BYTES_PER_MB,
            peak_activation_bytes=p.peak_bytes,
            runtime_memory_mb=_runtime_mb(p),
        )
    return row


def frame_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows to a DataFrame, columns in first-seen order (failed rows lack metric columns)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return pd.DataFrame(rows, columns=list(columns))


def _level_reference(model: nn.Module, batch: torch.Tensor) -> _Reference:
    with torch.inference_mode():
        return _Reference(batch, model.float().eval()(batch).float())


def _prepare_all(
    variants: Mapping[float, nn.Module],
    ctx: _SweepContext,
    check_batch: torch.Tensor,
    progress_csv: Path | None,
) -> list[_Prepared]:
    """Phase 1: every candidate built and evaluated; each row goes to disk as soon as it exists."""
    plan = ctx.plan
    prepared: list[_Prepared] = []
    by_level: dict[float, tuple[str, _Reference, int]] = {}
    for level, precision, runtime in plan.candidates():
        if level not in by_level:
            model = variants[level]
            macs = int(estimate_layerwise_stats(model, 1, ctx.input_shape)["macs"].sum())
            sha = sha256_bytes(state_dict_bytes(model)) if ctx.cache.enabled else ""
            by_level[level] = (sha, _level_reference(model, check_batch), macs)
        sha, reference, macs = by_level[level]
        p = _prepare(variants[level], sha, level, precision, runtime, ctx, reference, macs)
        prepared.append(p)
        if p.accuracy is not None:
            log.info(
                "prepared %s: accuracy %.4f, %.1f KiB%s",
                p.cid,
                p.accuracy.accuracy,
                p.size_bytes / 1024,
                " (from the cache)" if p.from_cache else "",
            )
        if progress_csv is not None:
            rows = [
                _pending_row(q, plan.memory_budgets_mb, plan.active_memory_budget_mb)
                for q in prepared
            ]
            atomic_write_csv(progress_csv, frame_rows(rows))
    return prepared


def execute_sweep(
    plan: SweepPlan,
    variants: Mapping[float, nn.Module],
    val_loader: DataLoader,
    calibration: Sequence[torch.Tensor],
    *,
    reference_predictions: torch.Tensor,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    test_loader: DataLoader | None = None,
    output_dir: str | Path | None = None,
    workdir: str | Path | None = None,
    cache: ArtifactCache | None = None,
    keep_models: dict[str, RuntimeModel] | None = None,
    on_result: Callable[[CandidateResult, int, int], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Prepare, time and judge every candidate of ``plan``; one row per candidate.

    Args:
        plan: the candidates and every setting that decides their rows.
        variants: the float model of each pruning level (``prune_variants``).
        reference_predictions: the fp32 baseline's validation predictions (agreement).
        output_dir: if given, ``sweep_results.csv`` there is rewritten as rows complete.
        cache: finished preparations are read from and written to it (``--resume``).
        keep_models: filled with every built candidate (id -> ``RuntimeModel``).
        on_result: called with (result, index, total) for each finished candidate.
        on_stage: called with ``preparing``, ``timing`` and ``memory`` as the sweep moves on.
    """
    stage = on_stage or (lambda _name: None)
    latency_input = first_inputs(val_loader, plan.latency_batch_size)
    batch_input = next(iter(val_loader))[0]
    ctx = _SweepContext(
        plan,
        val_loader,
        test_loader,
        list(calibration),
        latency_input,
        input_shape,
        Path(workdir) if workdir is not None else None,
        cache or ArtifactCache(None),
    )
    progress = Path(output_dir) / "sweep_results.csv" if output_dir is not None else None
    stage("preparing")
    prepared = _prepare_all(variants, ctx, batch_input, progress)
    if keep_models is not None:
        keep_models.update({p.cid: p.built for p in prepared if p.built is not None})

    stage("timing")
    ready = [p for p in prepared if p.built is not None]
    harness = plan.harness
    rapl = RaplReader()
    if ready:
        log.info(
            "timing %d candidates in interleaved rounds at batch %d (%d thread(s))",
            len(ready),
            plan.latency_batch_size,
            harness.threads,
        )
        twins = {p.cid: _instances(p.built, plan.instances, harness.threads) for p in ready}
        base_id = candidate_id(0.0, "fp32", DEFAULT_RUNTIME)
        lat = measure_interleaved(
            {cid: [m.timed_call(latency_input) for m in models] for cid, models in twins.items()},
            harness,
            dict.fromkeys(twins, plan.latency_batch_size),
            on_round=lambda r, n: log.debug("latency round %d/%d", r, n),
            energy_reader=rapl if rapl.available else None,
            anchor=base_id,
        )
        log.info("timing throughput at batch %d", int(batch_input.shape[0]))
        thr = measure_interleaved(
            {p.cid: _call(p.built, batch_input) for p in ready},
            throughput_settings(harness, plan.throughput_repeats),
            dict.fromkeys([p.cid for p in ready], int(batch_input.shape[0])),
            anchor=base_id,
        )
        for p in ready:
            p.latency, p.throughput = lat[p.cid], thr[p.cid]

    # Phase 3: peak RSS of one inference in a fresh process per candidate (after timing:
    # children would disturb it).
    if plan.measure_rss and ready:
        stage("memory")
        with RssProber() as prober:
            for p in ready:
                built = p.built
                if built is None:
                    continue
                if built.runtime == "compiled":
                    p.rss = (None, None, "not measured: compilation in the child would dominate")
                    continue
                probe = prober.probe(
                    built.eager.model,
                    built.eager.prepare_input(latency_input),
                    harness.threads,
                    onnx_path=built.artifact,
                )
                p.rss = (probe.cold_mb, probe.warm_mb, probe.note)

    base_id = candidate_id(0.0, "fp32", DEFAULT_RUNTIME)
    base_latency = next((p.latency for p in ready if p.cid == base_id), None)
    results: list[CandidateResult] = []
    for index, p in enumerate(prepared, start=1):
        speedup = None
        if base_latency is not None and p.latency is not None:
            s = paired_speedup(base_latency, p.latency)
            speedup = (s.median, s.q25, s.q75)
        result = _result(p, plan, reference_predictions, speedup)
        results.append(result)
        if on_result is not None:
            on_result(result, index, len(prepared))
    frame = frame_rows([r.to_dict() for r in results])
    if progress is not None:
        atomic_write_csv(progress, frame)
    return frame


def run_sweep(
    base_model: nn.Module,
    val_loader: DataLoader,
    calibration_loader: DataLoader | Iterable[torch.Tensor],
    device: str | torch.device,
    pruning_levels: Sequence[float],
    precisions: Sequence[str],
    power_watts: float,
    calibration_batches: int,
    memory_budgets_mb: Sequence[float],
    active_memory_budget_mb: float,
    latency_multiplier: float = 1.0,
    benchmark_repeats: int = 100,
    *,
    train_loader: DataLoader | None = None,
    benchmark_trials: int = 3,
    benchmark_warmup: int = 10,
    fine_tune_epochs: int = 0,
    learning_rate: float = 1e-3,
    quantization_backend: str = "x86",
    output_dir: str | Path | None = None,
    test_loader: DataLoader | None = None,
    latency_batch_size: int = 1,
    throughput_repeats: int = 10,
    threads: int = 1,
    seed: int = 0,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    pruned_models: Mapping[float, nn.Module] | None = None,
    harness: HarnessSettings | None = None,
    memory_budget_metric: str = "model",
    measure_rss: bool = True,
    runtimes: Sequence[str] = (DEFAULT_RUNTIME,),
    workdir: str | Path | None = None,
    keep_models: dict[str, RuntimeModel] | None = None,
    on_result: Callable[[CandidateResult, int, int], None] | None = None,
) -> pd.DataFrame:
    """Measure every pruning level x precision and decide acceptance against the budgets.

    The seed's call works as documented: the twelve leading arguments suffice (no training
    loader: with ``fine_tune_epochs=0`` nothing is trained). A candidate is rejected when its
    size (``memory_budget_metric``) exceeds ``active_memory_budget_mb``, which need not be one
    of ``memory_budgets_mb``; each listed budget gets its own ``violates_<b>mb`` column.
    Candidates are selected on ``val_loader``; ``test_loader`` only adds ``test_accuracy``.
    This is a thin wrapper: it builds a ``SweepPlan`` and calls ``execute_sweep``.

    Args:
        base_model: the trained fp32 baseline (not modified).
        train_loader: needed only when ``fine_tune_epochs > 0``.
        harness: full timing protocol; by default built from ``benchmark_*`` and ``threads``.
        memory_budget_metric: ``model`` (serialized size) or ``runtime`` (size + peak
            activations) is what the budgets constrain.
        measure_rss: probe each candidate's peak RSS in a fresh child process.
        runtimes: any of ``eager``, ``onnxruntime``, ``compiled``; a precision a runtime
            cannot run gives a ``skipped`` row with the reason.
        pruned_models: pre-built float model per level (skips pruning/fine-tuning here).
        Other arguments: as the config keys of the same names.

    Returns:
        One row per candidate (see README for the columns); failed candidates included.

    Example:
        >>> df = run_sweep(model, val_loader, calib_loader, "cpu", [0.0, 0.5], ["fp32", "int8"],
        ...                5.0, 4, [0.5, 1.0], 1.0, 1.0, 50)
    """
    plan = SweepPlan(
        pruning_levels=tuple(pruning_levels),
        precisions=tuple(precisions),
        harness=harness
        or HarnessSettings.from_counts(
            threads, benchmark_warmup, benchmark_repeats, benchmark_trials, seed
        ),
        runtimes=tuple(runtimes),
        power_watts=power_watts,
        calibration_batches=calibration_batches,
        memory_budgets_mb=tuple(memory_budgets_mb),
        active_memory_budget_mb=active_memory_budget_mb,
        memory_budget_metric=memory_budget_metric,
        latency_multiplier=latency_multiplier,
        fine_tune_epochs=fine_tune_epochs,
        quantization_backend=quantization_backend,
        latency_batch_size=latency_batch_size,
        throughput_repeats=throughput_repeats,
        measure_rss=measure_rss,
    )
    if pruned_models is None:
        pruned_models = prune_variants(
            base_model,
            pruning_levels,
            train_loader,
            fine_tune_epochs,
            learning_rate,
            device,
            seed,
            input_shape,
        )
    reference = evaluate_accuracy(copy.deepcopy(base_model).float().eval(), val_loader)
    return execute_sweep(
        plan,
        pruned_models,
        val_loader,
        _first_batches(calibration_loader, calibration_batches),
        reference_predictions=reference.predictions,
        input_shape=input_shape,
        test_loader=test_loader,
        output_dir=output_dir,
        workdir=workdir,
        keep_models=keep_models,
        on_result=on_result,
    )


def _instances(built: RuntimeModel | None, count: int, threads: int) -> list[RuntimeModel]:
    """The built candidate and up to ``count - 1`` independently built twins."""
    if built is None:
        raise ValueError("only built candidates can be timed")
    models = [built]
    for _ in range(count - 1):
        twin = built.fresh_instance(threads)
        if twin is None:
            break
        models.append(twin)
    return models


def _call(built: RuntimeModel | None, x: torch.Tensor) -> Callable[[], object]:
    if built is None:
        raise ValueError("only built candidates can be timed")
    return built.timed_call(x)
