"""The pruning x precision sweep: the only place that loops over candidates.

A candidate is (pruning level, precision, runtime) with a stable id (``p25-int8-eager``); the
candidates and their settings are a ``SweepPlan`` (``edge_opt.candidates.plan``). Three
phases, so that timing is fair and nothing is lost:
1. *prepare* each candidate (``edge_opt.candidates.preparation``): convert, export, evaluate
   accuracy, size, activation liveness, from the cache when it was done before; its row is written
   to ``sweep_results.csv`` at once (a failure is a ``failed`` row with its error);
2. *time* all prepared candidates together in interleaved rounds
   (``edge_opt.measure.harness``), at the latency batch and then at the throughput batch; speedups
   come from paired rounds;
3. *probe* each candidate's peak RSS in a fresh child process (after timing: children would
   disturb it).
"""

from __future__ import annotations

import copy
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.candidates.plan import DEFAULT_RUNTIME, SweepPlan, budget_column, candidate_id
from edge_opt.candidates.preparation import (
    PrepareContext,
    PreparedCandidate,
    frame_rows,
    prepare_all,
    prune_variants,
    runtime_mb,
)
from edge_opt.infra.artifacts import atomic_write_csv
from edge_opt.infra.cache import ArtifactCache
from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.measure.energy import RaplReader
from edge_opt.measure.harness import Dominance, HarnessSettings, measure_interleaved
from edge_opt.measure.memory import BYTES_PER_MB, probe_many
from edge_opt.measure.metrics import (
    CandidateMetrics,
    assemble_metrics,
    evaluate_accuracy,
    first_inputs,
    throughput_settings,
)
from edge_opt.measure.statistics import LatencyStats, paired_speedup
from edge_opt.runtimes.base import RuntimeModel

__all__ = [
    "CandidateResult",
    "SweepPlan",
    "budget_column",
    "candidate_id",
    "execute_sweep",
    "frame_rows",
    "prune_variants",
    "run_sweep",
]

log = logging.getLogger(__name__)


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


def _first_batches(source: DataLoader | Iterable[torch.Tensor], count: int) -> list[torch.Tensor]:
    batches: list[torch.Tensor] = []
    for item in source:
        batches.append(item[0] if isinstance(item, list | tuple) else item)
        if len(batches) >= count:
            break
    return batches


def _result(
    p: PreparedCandidate,
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
    with_activations = runtime_mb(p)
    constrained = budget_mb(p, plan)
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
        runtime_memory_mb=with_activations,
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


def budget_mb(p: PreparedCandidate, plan: SweepPlan) -> float | None:
    """The figure the memory budgets are checked on (``memory_budget_metric``)."""
    return p.size_bytes / BYTES_PER_MB if plan.memory_budget_metric == "model" else runtime_mb(p)


def timing_dominance(ready: Sequence[PreparedCandidate], plan: SweepPlan) -> Dominance:
    """Who may stop whose latency timing: per candidate, the others at least as accurate on
    validation that fit the active memory budget (and, in ``Dominance``, keep their p95 within
    the latency budget). Once one of them is faster beyond the CIs, the slower candidate can be
    on no frontier (the energy proxy follows the mean, also compared) and cannot be the pick."""
    fits = {
        p.cid: (mb := budget_mb(p, plan)) is not None and mb <= plan.active_memory_budget_mb
        for p in ready
    }
    accuracy = {p.cid: p.accuracy.accuracy for p in ready if p.accuracy is not None}
    over = {
        p.cid: [
            q.cid
            for q in ready
            if q.cid != p.cid and fits[q.cid] and accuracy.get(q.cid, -1.0) >= accuracy[p.cid]
        ]
        for p in ready
        if p.cid in accuracy
    }
    return Dominance(over, plan.latency_budget_ms)


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
    failures: Mapping[str, str] | None = None,
    progress: Progress | None = None,
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
        failures: candidates whose prepare task failed on a cluster node (id -> reason):
            they become ``failed`` rows with that reason (``edge_opt.orchestrate.distributed``).
        progress: advanced per prepared candidate, per timing round and per RSS probe.
    """
    stage = on_stage or (lambda _name: None)
    progress = progress or NullProgress()
    latency_input = first_inputs(val_loader, plan.latency_batch_size)
    batch_input = next(iter(val_loader))[0]
    ctx = PrepareContext(
        plan,
        val_loader,
        test_loader,
        list(calibration),
        latency_input,
        input_shape,
        Path(workdir) if workdir is not None else None,
        cache or ArtifactCache(None),
        dict(failures or {}),
    )
    progress_csv = Path(output_dir) / "sweep_results.csv" if output_dir is not None else None
    stage("preparing")
    prepared = prepare_all(variants, ctx, batch_input, progress_csv, progress)
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
        progress.start("timing latency", harness.max_rounds, "rounds (at most)")
        lat = measure_interleaved(
            {cid: [m.timed_call(latency_input) for m in models] for cid, models in twins.items()},
            harness,
            dict.fromkeys(twins, plan.latency_batch_size),
            on_round=lambda _r, _n: progress.advance(1),
            energy_reader=rapl if rapl.available else None,
            anchor=base_id,
            # Measured energy need not follow time: a slower candidate may win on energy.
            dominance=None if rapl.available else timing_dominance(ready, plan),
        )
        progress.finish()
        _log_rounds("latency", lat)
        log.info("timing throughput at batch %d", int(batch_input.shape[0]))
        thr_settings = throughput_settings(harness, plan.throughput_repeats)
        progress.start("timing throughput", thr_settings.max_rounds, "rounds (at most)")
        thr = measure_interleaved(
            {p.cid: _call(p.built, batch_input) for p in ready},
            thr_settings,
            dict.fromkeys([p.cid for p in ready], int(batch_input.shape[0])),
            on_round=lambda _r, _n: progress.advance(1),
            anchor=base_id,
        )
        progress.finish()
        _log_rounds("throughput", thr, reasons=False)
        for p in ready:
            p.latency, p.throughput = lat[p.cid], thr[p.cid]

    # Phase 3: peak RSS of one inference in a fresh process per candidate (after timing:
    # children would disturb it).
    if plan.measure_rss and ready:
        stage("memory")
        progress.start("peak RSS", len(ready), "candidates")
        probed = [p for p in ready if p.built is not None and p.built.runtime != "compiled"]
        probed_ids = {p.cid for p in probed}
        for p in ready:
            if p.cid not in probed_ids:
                p.rss = (None, None, "not measured: compilation in the child would dominate")
                progress.advance(1, p.cid)
        jobs = [
            (p.built.eager.model, p.built.eager.prepare_input(latency_input), p.built.artifact)
            for p in probed
            if p.built is not None
        ]
        probes = probe_many(
            jobs,
            harness.threads,
            lanes=max(1, os.cpu_count() or 1),
            on_done=lambda i: progress.advance(1, probed[i].cid),
        )
        for p, probe in zip(probed, probes, strict=True):
            p.rss = (probe.cold_mb, probe.warm_mb, probe.note)
        progress.finish()

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
    frame = flag_slower_than_less_pruned(frame_rows([r.to_dict() for r in results]))
    if progress_csv is not None:
        atomic_write_csv(progress_csv, frame)
    return frame


def _log_rounds(what: str, stats: Mapping[str, LatencyStats], reasons: bool = True) -> None:
    """One line after a timing phase: how many rounds it took and why candidates stopped
    (``reasons``: not for throughput, whose rounds are fixed)."""
    if not stats:
        return
    rounds = max(s.rounds for s in stats.values())
    if not reasons:
        log.info("%s timing: %d round(s)", what, rounds)
        return
    counted = Counter(s.stop_reason for s in stats.values()).most_common()
    stops = ", ".join(f"{n} {reason}" for reason, n in counted)
    log.info("%s timing: %d round(s); candidates stopped: %s", what, rounds, stops)


def flag_slower_than_less_pruned(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``slower_than_less_pruned`` (and ``faster_less_pruned``, the id that beats it): a
    candidate whose p50 is slower, beyond both 95% CIs, than the same precision and runtime
    at a lower pruning level ("MACs went down, latency did not"). Pure: returns a copy."""
    out = frame.copy()
    needed = {"latency_p50_ci95_low_ms", "latency_p50_ci95_high_ms", "pruning_level"}
    if out.empty or not needed <= set(out.columns):
        return out
    flags: list[bool | None] = []
    beaten_by: list[str | None] = []
    timed = out[out["status"] == "ok"].dropna(subset=["latency_p50_ci95_low_ms"])
    for _, row in out.iterrows():
        if row["status"] != "ok" or pd.isna(row.get("latency_p50_ci95_low_ms")):
            flags.append(None)
            beaten_by.append(None)
            continue
        lower = timed[
            (timed["precision"] == row["precision"])
            & (timed["runtime"] == row["runtime"])
            & (timed["pruning_level"] < row["pruning_level"])
            & (timed["latency_p50_ci95_high_ms"] < row["latency_p50_ci95_low_ms"])
        ]
        flags.append(not lower.empty)
        beaten_by.append(
            None
            if lower.empty
            else str(lower.sort_values("latency_p50_ms").iloc[0]["candidate_id"])
        )
    out["slower_than_less_pruned"] = flags
    out["faster_less_pruned"] = beaten_by
    return out


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
