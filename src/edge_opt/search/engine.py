"""The search loop: Optuna asks a generation of trials, they are screened cheapest first
(``edge_opt.search.screen``), the survivors are timed side by side, and every trial is told
back and becomes a row. The sampler is told deterministic objectives only: accuracy on the
screening subset (up), the roofline latency proxy on this host's profile (down) and the size
(down), with the budgets as constraints; so a seed asks for the same trials whatever the
timing noise, and the measured latencies decide which trials are timed and, through the
frontier, which one is recommended.

Trials are built with the grid's own ``prepare_candidate`` and timed with the grid's harness,
so a search row has the grid's columns, plus ``search_trial``, ``search_generation``,
``search_stage`` (what stopped it, or ``timed``), ``search_accuracy_subset``,
``latency_estimate_ms`` and one ``ratio.<group>`` column per channel group. The study lives in
memory only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from edge_opt.analysis.device_profiles import HardwareProfile
from edge_opt.analysis.devices import host_profile
from edge_opt.analysis.hardware import estimate_layerwise_stats
from edge_opt.analysis.slowdowns import flag_slower_than_less_pruned
from edge_opt.candidates.plan import REFERENCE_ID, SweepPlan
from edge_opt.candidates.preparation import (
    PrepareContext,
    PreparedCandidate,
    build_candidate,
    evaluate_candidate,
    level_reference,
    new_candidate,
)
from edge_opt.candidates.record import CandidateResult, records_frame
from edge_opt.candidates.results import candidate_record
from edge_opt.compress.precisions import BYTES_PER_ELEMENT
from edge_opt.compress.training import train_model
from edge_opt.config.schema import ExperimentConfig
from edge_opt.config.sections import SearchConfig
from edge_opt.data.splits import Loaders, batch_loader, loader_batch_size
from edge_opt.measure.memory import BYTES_PER_MB, RssProbe
from edge_opt.measure.metrics import first_inputs
from edge_opt.measure.session import (
    SessionSettings,
    Timing,
    probe_peak_rss,
    time_side_by_side,
)
from edge_opt.runtimes.base import RuntimeModel
from edge_opt.runtimes.registry import unsupported_reason
from edge_opt.search.rows import in_trial_order, screened_record, search_info
from edge_opt.search.samplers import build_sampler
from edge_opt.search.screen import (
    TimedPoint,
    TrialRecord,
    check_built,
    estimate_latency_ms,
    prefilter,
    screen_dominated,
    trial_id,
)
from edge_opt.search.space import ChannelGroup, channel_groups, prune_groups, removed_fraction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchInputs:
    """What a search shares with the grid: the plan, the baseline, data and scratch space."""

    plan: SweepPlan
    baseline: nn.Module
    val_loader: DataLoader
    calibration: Sequence[torch.Tensor]
    reference_predictions: torch.Tensor
    input_shape: tuple[int, int, int]
    host: HardwareProfile
    workdir: Path
    test_loader: DataLoader | None = None
    train_loader: DataLoader | None = None
    learning_rate: float = 1e-3
    seed: int = 0
    channel_multiple: int = 1
    train_threads: int | None = None  # fine-tuning's torch threads (the weights depend on it)
    # Sees the rows so far after each generation (the run's sweep_results.csv).
    on_rows: Callable[[pd.DataFrame], None] | None = None
    measured_on: str | None = None  # the machine that times the trials, as it describes itself


@dataclass(frozen=True)
class SearchOutcome:
    """Records (one per trial, plus the reference), and each timed candidate's models."""

    records: list[CandidateResult]
    variants: dict[str, nn.Module]  # candidate id -> pruned float model
    built: dict[str, RuntimeModel]
    groups: tuple[ChannelGroup, ...]
    timed_trials: int

    @property
    def frame(self) -> pd.DataFrame:
        return records_frame(self.records)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "timed_trials": self.timed_trials,
            "rows": len(self.records),
        }


@dataclass
class _State:
    """What the loop accumulates."""

    inputs: SearchInputs
    settings: SearchConfig
    groups: list[ChannelGroup]
    full: PrepareContext
    subset: PrepareContext
    check_batch: torch.Tensor
    records: list[TrialRecord] = field(default_factory=list)
    timed: list[TimedPoint] = field(default_factory=list)
    variants: dict[tuple[float, ...], nn.Module] = field(default_factory=dict)
    rows: list[CandidateResult] = field(default_factory=list)
    reference_timing: Timing | None = None  # from the first generation (the reference's row)
    built: dict[str, RuntimeModel] = field(default_factory=dict)
    models: dict[str, nn.Module] = field(default_factory=dict)


def _subset_loader(loader: DataLoader, count: int | None) -> DataLoader:
    dataset = loader.dataset
    if count is None or count >= len(dataset):  # type: ignore[arg-type]
        return loader
    return batch_loader(Subset(dataset, range(count)), loader_batch_size(loader))


def _ask(study: Any, state: _State, generation: int) -> tuple[Any, TrialRecord]:
    s, plan = state.settings, state.inputs.plan
    steps = math.floor(s.max_ratio / s.ratio_step + 1e-9)
    high = round(steps * s.ratio_step, 6)
    trial = study.ask()
    ratios = {
        g.name: round(trial.suggest_float(f"ratio.{g.name}", 0.0, high, step=s.ratio_step), 6)
        if steps > 0
        else 0.0
        for g in state.groups
    }
    precision = trial.suggest_categorical("precision", list(plan.precisions))
    runtime = trial.suggest_categorical("runtime", list(plan.runtimes))
    return trial, TrialRecord(trial.number, ratios, precision, runtime, generation)


def _variant(state: _State, rec: TrialRecord, example: torch.Tensor) -> nn.Module:
    key = tuple(rec.ratios.values())
    if key not in state.variants:
        inputs = state.inputs
        state.variants[key] = prune_groups(
            inputs.baseline, rec.ratios, example, inputs.channel_multiple
        )
    return state.variants[key]


def _fine_tuned(state: _State, ratios: tuple[float, ...], model: nn.Module) -> nn.Module:
    """``model`` after ``fine_tune_epochs``: every trial, unpruned included, and the reference
    get them, so every row had the same total training (the grid's rule)."""
    inputs, epochs = state.inputs, state.inputs.plan.fine_tune_epochs
    if epochs == 0:
        return model
    if inputs.train_loader is None:
        raise ValueError("fine_tune_epochs > 0 needs a train_loader")
    key = (*ratios, -1.0)  # fine-tuned copies live beside the pruned ones
    if key not in state.variants:
        log.info("search: fine-tuning ratios %s for %d epoch(s)", list(ratios), epochs)
        state.variants[key] = train_model(
            model,
            inputs.train_loader,
            epochs,
            inputs.learning_rate,
            "cpu",
            seed=inputs.seed,
            threads=inputs.train_threads,
        ).eval()
    return state.variants[key]


def _screen(state: _State, rec: TrialRecord) -> bool:
    """Stages 2-4 for one trial; True when it survives to the dominance screen."""
    inputs, plan = state.inputs, state.inputs.plan
    example = torch.zeros(1, *inputs.input_shape)
    variant = _variant(state, rec, example)
    rec.level = removed_fraction(variant, state.groups)
    rec.candidate_id = trial_id(rec.number, rec.level, rec.precision, rec.runtime)
    reason = unsupported_reason(rec.runtime, rec.precision)
    if reason is not None:
        rec.stage, rec.reason = "unsupported", reason
        return False
    rec.layers = estimate_layerwise_stats(
        variant,
        plan.latency_batch_size,
        inputs.input_shape,
        bytes_per_element=BYTES_PER_ELEMENT[rec.precision],
    )
    budget = plan.active_memory_budget_mb
    if not prefilter(rec, budget, state.settings.latency_budget_ms, inputs.host):
        return False
    rec.variant = _fine_tuned(state, tuple(rec.ratios.values()), variant)
    macs = int(rec.layers["macs"].sum()) // plan.latency_batch_size
    ctx = replace(state.subset, workdir=inputs.workdir / rec.candidate_id)
    reference = level_reference(rec.variant, state.check_batch)
    p = new_candidate(rec.variant, rec.level, rec.precision, rec.runtime, plan, macs)
    p.cid = rec.candidate_id
    p = build_candidate(rec.variant, p, ctx, reference)
    rec.prepared = p
    if p.error is not None or p.accuracy is None:
        rec.stage, rec.reason = "failed", p.error or "not evaluated"
        return False
    return check_built(rec, budget, plan.memory_budget_metric)


def _reference(state: _State) -> PreparedCandidate:
    """The unpruned fp32 eager model: timed in every generation, anchor of the speedups."""
    inputs = state.inputs
    macs = int(estimate_layerwise_stats(inputs.baseline, 1, inputs.input_shape)["macs"].sum())
    ctx = replace(state.full, workdir=inputs.workdir / REFERENCE_ID)
    zero = tuple(0.0 for _ in state.groups)
    model = _fine_tuned(state, zero, inputs.baseline)
    ref = level_reference(model, state.check_batch)
    p = new_candidate(model, 0.0, "fp32", "eager", inputs.plan, macs)
    return build_candidate(model, p, ctx, ref)


def _tell(study: Any, trial: Any, rec: TrialRecord) -> None:
    import optuna

    if rec.values is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    trial.set_constraint("size_over_budget_mb", rec.constraints[0])
    trial.set_constraint("roofline_over_budget_ms", rec.constraints[1])
    study.tell(trial, list(rec.values))


def _told_values(rec: TrialRecord) -> tuple[float, float, float] | None:
    """What the sampler learns: subset accuracy, the roofline proxy of latency and the size.

    Only deterministic figures are told (never a measured time), so the trials a seed asks
    for do not depend on timing noise: timing decides which trials are timed, not which are
    tried. A trial stopped before it was built is told accuracy 0 and its size lower bound,
    with its budget excess as a constraint.
    """
    if rec.stage in ("failed", "unsupported"):
        return None
    p = rec.prepared
    built = p is not None and p.accuracy is not None
    size = p.size_bytes / BYTES_PER_MB if built and p is not None else rec.size_lower_mb
    return (rec.subset_accuracy or 0.0, rec.roofline_ms, size)


def _time_survivors(
    state: _State,
    survivors: list[TrialRecord],
    reference: PreparedCandidate,
    on_result: Callable[[CandidateResult, int, int], None] | None,
) -> None:
    """The survivors evaluated on the whole validation split, then timed side by side with the
    reference (the anchor of the speedups, timed in every generation)."""
    plan = state.inputs.plan
    for rec in survivors:
        p = rec.prepared
        if p is None or p.built is None or rec.variant is None:
            raise ValueError(f"{rec.candidate_id}: a survivor must be built")
        evaluate_candidate(p, p.built, state.full, level_reference(rec.variant, state.check_batch))
    built = {REFERENCE_ID: reference.built} if reference.built is not None else {}
    for rec in survivors:
        if rec.prepared is not None and rec.prepared.built is not None:
            built[rec.candidate_id] = rec.prepared.built
    log.info("search: timing %d candidate(s) side by side", len(built))
    settings = SessionSettings(
        plan.harness, plan.instances, plan.throughput_repeats, plan.latency_batch_size
    )
    latency_input = state.full.latency_input
    timings = time_side_by_side(built, settings, latency_input, state.check_batch, REFERENCE_ID)
    rss = probe_peak_rss(built, latency_input, plan.harness.threads) if plan.measure_rss else {}
    if state.reference_timing is None and REFERENCE_ID in timings:
        state.reference_timing = timings[REFERENCE_ID]
        result = _record(state, reference, timings[REFERENCE_ID], rss.get(REFERENCE_ID))
        info = search_info(None, "reference", state.groups)
        state.rows.insert(0, replace(result, search=info))
        if reference.built is not None:
            state.built[REFERENCE_ID] = reference.built
            state.models[REFERENCE_ID] = reference.built.eager.model
    for rec in survivors:
        p = rec.prepared
        timing = timings.get(rec.candidate_id)
        if p is None or timing is None or p.accuracy is None:
            raise ValueError(f"{rec.candidate_id}: a timed survivor lacks its measurements")
        result = _record(state, p, timing, rss.get(rec.candidate_id))
        rec.stage = "timed"
        state.timed.append(
            TimedPoint(
                rec.candidate_id,
                p.accuracy.accuracy,
                timing.latency.p50_ms,
                p.size_bytes / BYTES_PER_MB,
                rec.runtime,
                rec.precision,
                rec.roofline_ms,
                rec.operators,
            )
        )
        state.rows.append(replace(result, search=search_info(rec, "timed")))
        if p.built is not None and rec.variant is not None:
            state.built[rec.candidate_id] = p.built
            state.models[rec.candidate_id] = rec.variant
        if on_result is not None:
            on_result(result, len(state.timed), state.settings.trials)


def _record(
    state: _State, p: PreparedCandidate, timing: Timing, rss: RssProbe | None
) -> CandidateResult:
    inputs = state.inputs
    return candidate_record(
        p, inputs.plan, inputs.reference_predictions, timing, rss, inputs.measured_on
    )


def _run_generation(
    study: Any,
    state: _State,
    generation: int,
    size: int,
    reference: PreparedCandidate,
    on_result: Callable[[CandidateResult, int, int], None] | None,
) -> None:
    asked = [_ask(study, state, generation) for _ in range(size)]
    seen = {r.key: r for r in state.records}
    fresh: list[TrialRecord] = []
    duplicates: list[tuple[TrialRecord, TrialRecord]] = []
    survivors = []
    for _, rec in asked:
        if rec.key in seen:
            duplicates.append((rec, seen[rec.key]))
            continue
        seen[rec.key] = rec
        fresh.append(rec)
        if _screen(state, rec):
            rec.latency_estimate_ms = estimate_latency_ms(rec, state.timed)
            survivors.append(rec)
    survivors = screen_dominated(survivors, state.timed)
    cap = state.settings.max_timed
    if cap is not None:
        room = max(cap - len(state.timed), 0)
        for rec in survivors[room:]:
            rec.stage, rec.reason = "timing_budget", f"search.max_timed ({cap}) was reached"
        survivors = survivors[:room]
    if survivors or state.reference_timing is None:
        _time_survivors(state, survivors, reference, on_result)
    for rec in fresh:
        rec.values = _told_values(rec)
        if rec.stage != "timed":
            state.rows.append(screened_record(rec, state.inputs.plan))
    for rec, original in duplicates:
        rec.level, rec.values, rec.constraints = (
            original.level,
            original.values,
            original.constraints,
        )
        rec.candidate_id = trial_id(rec.number, rec.level, rec.precision, rec.runtime)
        rec.stage, rec.reason = (
            "duplicate",
            f"same ratios, precision and runtime as {original.candidate_id}",
        )
        rec.subset_accuracy = original.subset_accuracy
        state.rows.append(screened_record(rec, state.inputs.plan))
    for trial, rec in asked:
        _tell(study, trial, rec)
    state.records += [rec for _, rec in asked]


def _enqueue_unpruned(
    study: Any, groups: Sequence[ChannelGroup], plan: SweepPlan, trials: int
) -> None:
    """The first trials: the unpruned model in every other precision x runtime (the grid's
    level 0; fp32 eager is the reference row), so the search starts from the grid's anchors
    and spends its budget on what pruning adds to them."""
    combos = [
        (precision, runtime)
        for runtime in plan.runtimes
        for precision in plan.precisions
        if (precision, runtime) != ("fp32", "eager")
        and unsupported_reason(runtime, precision) is None
    ]
    for precision, runtime in combos[:trials]:
        params: dict[str, Any] = {f"ratio.{g.name}": 0.0 for g in groups}
        study.enqueue_trial({**params, "precision": precision, "runtime": runtime})


def run_search(
    settings: SearchConfig,
    inputs: SearchInputs,
    on_result: Callable[[CandidateResult, int, int], None] | None = None,
) -> SearchOutcome:
    """Search per-group pruning ratios x precision x runtime with Optuna; one row per trial.

    Args:
        settings: the config's ``search`` block (strategy ``optuna``).
        inputs: the plan (precisions, runtimes, budgets, timing protocol) and shared data.
        on_result: called with (result, timed so far, trials) for each timed candidate.

    Returns:
        The rows (the reference ``p00-fp32-eager`` first), and each timed candidate's float
        model and built runtime model, by candidate id.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = settings.seed if settings.seed is not None else inputs.seed
    plan = inputs.plan
    example = torch.zeros(1, *inputs.input_shape)
    groups = channel_groups(inputs.baseline, example)
    full = PrepareContext(
        plan,
        inputs.val_loader,
        inputs.test_loader,
        list(inputs.calibration),
        first_inputs(inputs.val_loader, plan.latency_batch_size),
        inputs.input_shape,
        inputs.workdir,
    )
    subset = replace(
        full,
        val_loader=_subset_loader(inputs.val_loader, settings.accuracy_subset),
        test_loader=None,
    )
    state = _State(inputs, settings, groups, full, subset, next(iter(inputs.val_loader))[0])
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        sampler=build_sampler(settings.sampler, seed, settings.population),
    )
    reference = _reference(state)
    _enqueue_unpruned(study, groups, plan, settings.trials)
    log.info(
        "search: %d trial(s) over %d channel group(s) (%s), %s x %s, %s sampler",
        settings.trials,
        len(groups),
        ", ".join(g.name for g in groups),
        "/".join(plan.precisions),
        "/".join(plan.runtimes),
        settings.sampler,
    )
    generation = 0
    while len(state.records) < settings.trials:
        if settings.max_timed is not None and len(state.timed) >= settings.max_timed:
            log.info("search: %d trials timed (search.max_timed); stopping", len(state.timed))
            break
        size = min(settings.population, settings.trials - len(state.records))
        _run_generation(study, state, generation, size, reference, on_result)
        generation += 1
        if inputs.on_rows is not None:
            inputs.on_rows(records_frame(in_trial_order(state.rows)))
    records = flag_slower_than_less_pruned(in_trial_order(state.rows))
    return SearchOutcome(records, state.models, state.built, tuple(groups), len(state.timed))


def search_from_config(
    cfg: ExperimentConfig,
    plan: SweepPlan,
    baseline: nn.Module,
    loaders: Loaders,
    reference_predictions: torch.Tensor,
    calibration: Sequence[torch.Tensor],
    workdir: Path,
    on_rows: Callable[[pd.DataFrame], None] | None = None,
    on_result: Callable[[CandidateResult, int, int], None] | None = None,
    measured_on: str | None = None,
) -> SearchOutcome:
    """What the pipeline runs for ``search: {strategy: optuna}`` (in place of the grid)."""
    input_shape = tuple(next(iter(loaders.val))[0].shape[1:])
    inputs = SearchInputs(
        plan=plan,
        baseline=baseline,
        val_loader=loaders.val,
        calibration=calibration,
        reference_predictions=reference_predictions,
        input_shape=(int(input_shape[0]), int(input_shape[1]), int(input_shape[2])),
        host=host_profile(cfg.benchmark_threads, cfg.power_watts, cfg.refresh_host_profile),
        workdir=workdir / "search",
        test_loader=loaders.test,
        train_loader=loaders.train,
        learning_rate=cfg.learning_rate,
        seed=cfg.seed,
        channel_multiple=cfg.channel_multiple,
        train_threads=cfg.train_threads,
        on_rows=on_rows,
        measured_on=measured_on,
    )
    return run_search(cfg.search, inputs, on_result)
