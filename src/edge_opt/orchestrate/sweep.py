"""The grid sweep: every candidate of a plan prepared, timed side by side, and judged.

A candidate is (pruning level, precision, runtime) with a stable id (``p25-int8-eager``); the
candidates and their settings are a ``SweepPlan`` (``candidates.plan``). Three phases, so that
timing is fair and nothing is lost:

1. *prepare* every candidate through the run's executor (``orchestrate.prepare``): convert,
   export, evaluate, from the cache when it was done before; its row goes to the progress sink
   at once (a failure is a ``failed`` row with its error);
2. *time* every prepared candidate side by side (``measure.session``): latency in interleaved
   rounds, throughput, paired speedups; a candidate that can no longer matter stops early
   (``decide.dominance``);
3. *probe* each candidate's peak RSS in a fresh child process (after timing).

Each candidate then becomes its typed record, with the memory budgets' verdict
(``decide.budgets``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.analysis.slowdowns import flag_slower_than_less_pruned
from edge_opt.candidates.plan import DEFAULT_RUNTIME, REFERENCE_ID, SweepPlan
from edge_opt.candidates.preparation import pending_row
from edge_opt.candidates.record import CandidateResult, records_frame, rows_frame
from edge_opt.compress.variants import VariantSettings
from edge_opt.config.types import this_cpu_engine
from edge_opt.decide.acceptance import candidate_record, contenders
from edge_opt.decide.dominance import timing_dominance
from edge_opt.infra.cache import ArtifactCache
from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.measure.harness import HarnessSettings
from edge_opt.measure.memory import RssProbe
from edge_opt.measure.metrics import evaluate_accuracy, first_inputs
from edge_opt.measure.session import SessionSettings, probe_peak_rss, time_side_by_side
from edge_opt.orchestrate.context import RunSink
from edge_opt.orchestrate.executors.base import Executor
from edge_opt.orchestrate.executors.local import LocalExecutor
from edge_opt.orchestrate.prepare import CandidateInputs, prepare_candidates, prepare_variants
from edge_opt.runtimes.base import RuntimeModel
from edge_opt.runtimes.build import rss_probe_refusal

__all__ = ["CandidateResult", "SweepHooks", "SweepOutcome", "execute_sweep", "run_sweep"]

ResultCallback = Callable[[CandidateResult, int, int], None]


def _nothing(_name: str) -> None:
    return None


@dataclass(frozen=True)
class SweepHooks:
    """How a sweep reports while it runs: progress, stage changes, rows as they complete (the
    progress CSV), each finished candidate."""

    progress: Progress = field(default_factory=NullProgress)
    on_stage: Callable[[str], None] = _nothing
    on_rows: Callable[[pd.DataFrame], None] | None = None
    on_result: ResultCallback | None = None


@dataclass(frozen=True)
class SweepOutcome:
    """The sweep's records (plan order) and every built candidate (by id)."""

    records: list[CandidateResult]
    built: dict[str, RuntimeModel]

    def frame(self) -> pd.DataFrame:
        return records_frame(self.records)


def execute_sweep(
    plan: SweepPlan,
    variants: Mapping[float, nn.Module],
    inputs: CandidateInputs,
    reference_predictions: torch.Tensor,
    *,
    executor: Executor | None = None,
    cache: ArtifactCache | None = None,
    hooks: SweepHooks | None = None,
    measured_on: str | None = None,
) -> SweepOutcome:
    """Prepare, time and judge every candidate of ``plan``.

    Args:
        plan: the candidates and every setting that decides their records.
        variants: the float model of each pruning level (``prepare_variants``).
        inputs: validation/test loaders, calibration batches, the latency input.
        reference_predictions: the fp32 baseline's validation predictions (agreement).
        executor: where prepare tasks run (default: this process).
        cache: finished preparations are read from and written to it (``--resume``).
        hooks: progress, stage changes, the progress CSV, each finished candidate.
        measured_on: the machine that times the candidates, as it describes itself.
    """
    hooks = hooks or SweepHooks()
    hooks.on_stage("preparing")
    on_prepared = None
    if hooks.on_rows is not None:
        sink = hooks.on_rows
        on_prepared = lambda ps: sink(rows_frame([pending_row(p, plan) for p in ps]))  # noqa: E731
    prepared = prepare_candidates(
        plan,
        variants,
        inputs,
        executor or LocalExecutor(),
        cache or ArtifactCache(None),
        hooks.progress,
        on_prepared,
    )
    ready = {p.cid: p.built for p in prepared if p.built is not None}
    hooks.on_stage("timing")
    timings = time_side_by_side(
        ready,
        session_settings(plan),
        inputs.latency_input,
        inputs.check_batch,
        anchor=REFERENCE_ID,
        dominance=timing_dominance(contenders(prepared, plan), plan.latency_budget_ms),
        measure_energy=True,
        progress=hooks.progress,
    )
    for built in ready.values():  # their buffers at the throughput batch; probes come next
        built.release_buffers()
    rss: dict[str, RssProbe] = {}
    if plan.measure_rss and ready:
        hooks.on_stage("memory")
        refusals = {cid: rss_probe_refusal(b.runtime) for cid, b in ready.items()}
        rss = probe_peak_rss(
            ready,
            inputs.latency_input,
            plan.harness.threads,
            {cid: why for cid, why in refusals.items() if why is not None},
            hooks.progress,
        )
    records = []
    for index, p in enumerate(prepared, start=1):
        record = candidate_record(
            p, plan, reference_predictions, timings.get(p.cid), rss.get(p.cid), measured_on
        )
        records.append(record)
        if hooks.on_result is not None:
            hooks.on_result(record, index, len(prepared))
    outcome = SweepOutcome(flag_slower_than_less_pruned(records), ready)
    if hooks.on_rows is not None:
        hooks.on_rows(outcome.frame())
    return outcome


def session_settings(plan: SweepPlan) -> SessionSettings:
    return SessionSettings(
        plan.harness, plan.instances, plan.throughput_repeats, plan.latency_batch_size
    )


def _first_batches(source: DataLoader | Iterable[torch.Tensor], count: int) -> list[torch.Tensor]:
    batches: list[torch.Tensor] = []
    for item in source:
        batches.append(item[0] if isinstance(item, list | tuple) else item)
        if len(batches) >= count:
            break
    return batches


def _local_inputs(
    plan: SweepPlan,
    val_loader: DataLoader,
    test_loader: DataLoader | None,
    calibration_loader: DataLoader | Iterable[torch.Tensor],
    input_shape: tuple[int, int, int],
    workdir: str | Path | None,
) -> CandidateInputs:
    """What every candidate of ``plan`` is built and measured with, from the caller's loaders."""
    return CandidateInputs(
        val_loader,
        test_loader,
        _first_batches(calibration_loader, plan.calibration_batches),
        first_inputs(val_loader, plan.latency_batch_size),
        next(iter(val_loader))[0],
        input_shape,
        Path(workdir) if workdir is not None else None,
    )


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
    quantization_backend: str | None = None,
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
    on_result: ResultCallback | None = None,
) -> pd.DataFrame:
    """Measure every pruning level x precision and decide acceptance against the budgets.

    edge-opt v1's call, as documented: the twelve leading arguments suffice (with
    ``fine_tune_epochs=0`` nothing is trained). A thin wrapper: it builds a ``SweepPlan`` and
    calls ``execute_sweep`` in this process. ``harness`` overrides the ``benchmark_*`` and
    ``threads`` arguments; ``pruned_models`` skips pruning; ``keep_models`` is filled with every
    built candidate; ``output_dir`` gets ``sweep_results.csv`` as rows complete;
    ``quantization_backend`` None: this CPU's int8 engine (as the config's ``auto``). The other
    arguments are the config keys of the same names (docs/configuration.md).

    Returns:
        One row per candidate, failed and skipped ones included (columns: docs/outputs.md).

    Example:
        >>> df = run_sweep(model, val_loader, calib_loader, "cpu", [0.0, 0.5], ["fp32", "int8"],
        ...                5.0, 4, [0.5, 1.0], 1.0, 1.0, 50)
    """
    counts = (threads, benchmark_warmup, benchmark_repeats, benchmark_trials, seed)
    quantization_backend = quantization_backend or this_cpu_engine()
    # The plan's fields, in its order (candidates.plan.SweepPlan).
    plan = SweepPlan(
        *(
            tuple(pruning_levels),
            tuple(precisions),
            harness or HarnessSettings.from_counts(*counts),
        ),
        *(tuple(runtimes), power_watts, calibration_batches, tuple(memory_budgets_mb)),
        *(active_memory_budget_mb, memory_budget_metric, latency_multiplier, fine_tune_epochs),
        *(quantization_backend, latency_batch_size, throughput_repeats, measure_rss),
    )
    if pruned_models is None:
        settings = VariantSettings(fine_tune_epochs, learning_rate, seed, input_shape)
        pruned_models = prepare_variants(
            base_model, pruning_levels, train_loader, settings, LocalExecutor(), ArtifactCache(None)
        )
    reference = evaluate_accuracy(copy.deepcopy(base_model).float().eval(), val_loader)
    loaders = (val_loader, test_loader, calibration_loader)
    inputs = _local_inputs(plan, *loaders, input_shape, workdir)
    sink = RunSink(Path(output_dir)).rows if output_dir is not None else None
    hooks = SweepHooks(on_rows=sink, on_result=on_result)
    outcome = execute_sweep(plan, pruned_models, inputs, reference.predictions, hooks=hooks)
    if keep_models is not None:
        keep_models.update(outcome.built)
    return outcome.frame()
