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
from edge_opt.energy import RaplReader
from edge_opt.errors import EdgeOptError
from edge_opt.hardware import estimate_layerwise_stats
from edge_opt.harness import HarnessSettings, LatencyStats, measure_interleaved, paired_speedup
from edge_opt.memory import BYTES_PER_MB, measure_peak_rss_delta_mb, peak_activation_bytes
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
        return row


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
) -> dict[float, nn.Module]:
    """One pruned (and optionally fine-tuned) float model per level; level 0 is never tuned."""
    variants: dict[float, nn.Module] = {}
    example = torch.zeros(1, *input_shape)
    for index, level in enumerate(pruning_levels):
        pruned = structured_channel_prune(base_model, level, example, scope=scope)
        if level > 0 and fine_tune_epochs > 0:
            if train_loader is None:
                raise ValueError("fine_tune_epochs > 0 needs a train_loader")
            log.info("fine-tuning pruning level %.2f for %d epoch(s)", level, fine_tune_epochs)
            pruned = train_model(
                pruned,
                train_loader,
                fine_tune_epochs,
                learning_rate,
                device,
                seed=seed + 1000 + index,
            )
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
    latency: LatencyStats | None = None
    throughput: LatencyStats | None = None
    rss: tuple[float | None, float | None, str] = (None, None, "not measured")

    @property
    def cid(self) -> str:
        return str(self.common["candidate_id"])


@dataclass(frozen=True)
class _Reference:
    """The fixed batch every candidate's outputs are checked on, and the fp32 eager logits of
    the same pruning level on it."""

    batch: torch.Tensor
    logits: torch.Tensor


def _prepare(
    float_model: nn.Module,
    level: float,
    precision: str,
    runtime: str,
    fine_tune_epochs: int,
    val_loader: DataLoader,
    test_loader: DataLoader | None,
    calibration: list[torch.Tensor],
    backend: str,
    latency_input: torch.Tensor,
    input_shape: tuple[int, int, int],
    threads: int,
    workdir: Path | None,
    reference: _Reference,
    macs_per_sample: int,
) -> _Prepared:
    prepared = _Prepared(
        common={
            "candidate_id": candidate_id(level, precision, runtime),
            "pruning_level": level,
            "precision": precision,
            "runtime": runtime,
            "parameter_count": count_parameters(float_model),
            "macs_per_sample": macs_per_sample,
            "fine_tune_epochs": fine_tune_epochs,
        }
    )
    reason = unsupported_reason(runtime, precision)
    if reason is not None:
        prepared.skipped = reason
        return prepared
    start = time.perf_counter()
    try:
        folder = workdir / prepared.cid if workdir is not None else None
        built = build_runtime(
            runtime, float_model, precision, calibration, latency_input, threads, backend, folder
        )
        prepared.built = built
        prepared.accuracy = evaluate_predict(built.predict, val_loader)
        if test_loader is not None:
            prepared.test_accuracy = evaluate_predict(built.predict, test_loader).accuracy
        prepared.size_bytes = built.size_bytes
        logits = built.predict(reference.batch).float()
        prepared.ref_agreement = float(
            (logits.argmax(1) == reference.logits.argmax(1)).float().mean()
        )
        prepared.ref_max_abs_error = float((logits - reference.logits).abs().max())
        example = built.eager.prepare_input(latency_input)
        prepared.peak_bytes = peak_activation_bytes(built.eager.model, example).peak_bytes
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
    budgets: Sequence[float],
    active: float,
    budget_metric: str,
    power_watts: float,
    latency_multiplier: float,
    reference: torch.Tensor,
    speedup: tuple[float, float, float] | None,
) -> CandidateResult:
    base = {**p.common, "active_budget_mb": active, "budget_metric": budget_metric}
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
            power_watts,
            latency_multiplier,
            reference,
        )
    runtime_mb = _runtime_mb(p)
    constrained = p.size_bytes / BYTES_PER_MB if budget_metric == "model" else runtime_mb
    violations = {b: None if constrained is None else constrained > b for b in budgets}
    return CandidateResult(
        **base,
        status="ok",
        error=None,
        metrics=metrics,
        test_accuracy=p.test_accuracy,
        accepted=violations[active] is False,
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


def run_sweep(
    base_model: nn.Module,
    train_loader: DataLoader,
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
    benchmark_trials: int = 3,
    benchmark_warmup: int = 10,
    fine_tune_epochs: int = 0,
    learning_rate: float = 1e-3,
    quantization_backend: str = "x86",
    output_dir: str | Path | None = None,
    *,
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

    Candidates are selected on ``val_loader``; ``test_loader`` (if given) only adds the
    ``test_accuracy`` column. With ``output_dir``, ``sweep_results.csv`` there is rewritten
    atomically as rows complete, so a crash loses at most the work in progress.

    Args:
        base_model: the trained fp32 baseline (not modified).
        harness: full timing protocol; by default built from ``benchmark_*`` and ``threads``.
        memory_budget_metric: ``model`` (serialized size) or ``runtime`` (size + peak
            activations) is what the budgets constrain.
        measure_rss: probe each candidate's peak RSS in a fresh child process.
        runtimes: any of ``eager``, ``onnxruntime``, ``compiled``; a precision a runtime
            cannot run gives a ``skipped`` row with the reason.
        workdir: where exported ONNX files are written (a temporary directory by default).
        keep_models: if given, filled with every built candidate (id -> ``RuntimeModel``).
        pruned_models: pre-built float model per level (skips pruning/fine-tuning here).
        on_result: called with (result, index, total) for each finished candidate.
        Other arguments: as the config keys of the same names.

    Returns:
        One row per candidate (see README for the columns); failed candidates included.
    """
    if active_memory_budget_mb not in memory_budgets_mb:
        raise ValueError(
            f"active_memory_budget_mb: {active_memory_budget_mb} is not in memory_budgets_mb "
            f"{list(memory_budgets_mb)}"
        )
    if memory_budget_metric not in BUDGET_METRICS:
        raise ValueError(f"memory_budget_metric: {memory_budget_metric!r} is not model or runtime")
    if harness is None:
        harness = HarnessSettings.from_counts(
            threads, benchmark_warmup, benchmark_repeats, benchmark_trials, seed
        )
    calibration = _first_batches(calibration_loader, calibration_batches)
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
    reference = evaluate_accuracy(copy.deepcopy(base_model).float().eval(), val_loader).predictions
    latency_input = first_inputs(val_loader, latency_batch_size)
    batch_input = next(iter(val_loader))[0]
    out = Path(output_dir) / "sweep_results.csv" if output_dir is not None else None
    workdir = Path(workdir) if workdir is not None else None

    # Phase 1: prepare every candidate; each row goes to disk as soon as it exists.
    prepared: list[_Prepared] = []
    check_batch = next(iter(val_loader))[0]
    for level in pruning_levels:
        with torch.inference_mode():
            level_logits = pruned_models[level].float().eval()(check_batch).float()
        level_reference = _Reference(check_batch, level_logits)
        level_macs = int(
            estimate_layerwise_stats(pruned_models[level], 1, input_shape)["macs"].sum()
        )
        for precision, runtime in itertools.product(precisions, runtimes):
            p = _prepare(
                pruned_models[level],
                level,
                precision,
                runtime,
                fine_tune_epochs if level > 0 else 0,
                val_loader,
                test_loader,
                calibration,
                quantization_backend,
                latency_input,
                input_shape,
                harness.threads,
                workdir,
                level_reference,
                level_macs,
            )
            prepared.append(p)
            if keep_models is not None and p.built is not None:
                keep_models[p.cid] = p.built
            if p.accuracy is not None:
                log.info(
                    "prepared %s: accuracy %.4f, %.1f KiB",
                    p.cid,
                    p.accuracy.accuracy,
                    p.size_bytes / 1024,
                )
            if out is not None:
                atomic_write_csv(
                    out,
                    frame_rows(
                        [
                            _pending_row(q, memory_budgets_mb, active_memory_budget_mb)
                            for q in prepared
                        ]
                    ),
                )

    # Phase 2: time all candidates together, interleaved, at both batch sizes.
    ready = [p for p in prepared if p.built is not None]
    rapl = RaplReader()
    if ready:
        log.info(
            "timing %d candidates in interleaved rounds at batch %d (%d thread(s))",
            len(ready),
            latency_batch_size,
            harness.threads,
        )
        lat = measure_interleaved(
            {p.cid: _call(p.built, latency_input) for p in ready},
            harness,
            dict.fromkeys([p.cid for p in ready], latency_batch_size),
            on_round=lambda r, n: log.debug("latency round %d/%d", r, n),
            energy_reader=rapl if rapl.available else None,
        )
        log.info("timing throughput at batch %d", int(batch_input.shape[0]))
        thr = measure_interleaved(
            {p.cid: _call(p.built, batch_input) for p in ready},
            throughput_settings(harness, throughput_repeats),
            dict.fromkeys([p.cid for p in ready], int(batch_input.shape[0])),
        )
        for p in ready:
            p.latency, p.throughput = lat[p.cid], thr[p.cid]

    # Phase 3: peak RSS of one inference in a fresh process per candidate.
    if measure_rss:
        for p in ready:
            built = p.built
            if built is None:
                continue
            if built.runtime == "compiled":
                p.rss = (None, None, "not measured: compilation in the child would dominate")
                continue
            probe = measure_peak_rss_delta_mb(
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
        result = _result(
            p,
            memory_budgets_mb,
            active_memory_budget_mb,
            memory_budget_metric,
            power_watts,
            latency_multiplier,
            reference,
            speedup,
        )
        results.append(result)
        if on_result is not None:
            on_result(result, index, len(prepared))
    frame = frame_rows([r.to_dict() for r in results])
    if out is not None:
        atomic_write_csv(out, frame)
    return frame


def _call(built: RuntimeModel | None, x: torch.Tensor) -> Callable[[], object]:
    if built is None:
        raise ValueError("only built candidates can be timed")
    return built.timed_call(x)
