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
memory only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from edge_opt.analysis.devices import host_profile
from edge_opt.analysis.slowdowns import flag_slower_than_less_pruned
from edge_opt.candidates.plan import REFERENCE_ID, SweepPlan
from edge_opt.candidates.preparation import (
    PrepareContext,
    PreparedCandidate,
    evaluate_candidate,
    level_reference,
)
from edge_opt.candidates.record import CandidateResult, records_frame
from edge_opt.config.schema import ExperimentConfig
from edge_opt.config.sections import SearchConfig
from edge_opt.data.splits import Loaders
from edge_opt.decide.acceptance import candidate_record
from edge_opt.measure.memory import BYTES_PER_MB, RssProbe
from edge_opt.measure.metrics import first_inputs
from edge_opt.measure.session import (
    SessionSettings,
    Timing,
    probe_peak_rss,
    time_side_by_side,
)
from edge_opt.runtimes.registry import unsupported_reason
from edge_opt.search.rows import in_trial_order, screened_record, search_info
from edge_opt.search.samplers import build_sampler
from edge_opt.search.screen import (
    TimedPoint,
    TrialRecord,
    estimate_latency_ms,
    screen_dominated,
    trial_id,
)
from edge_opt.search.space import ChannelGroup, channel_groups
from edge_opt.search.state import SearchInputs, SearchOutcome, SearchState, subset_loader
from edge_opt.search.trials import (
    ask_trial,
    reference_candidate,
    screen_trial,
    tell_study,
    told_values,
)

log = logging.getLogger(__name__)


def _time_survivors(
    state: SearchState,
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
    state: SearchState, p: PreparedCandidate, timing: Timing, rss: RssProbe | None
) -> CandidateResult:
    inputs = state.inputs
    return candidate_record(
        p, inputs.plan, inputs.reference_predictions, timing, rss, inputs.measured_on
    )


def _run_generation(
    study: Any,
    state: SearchState,
    generation: int,
    size: int,
    reference: PreparedCandidate,
    on_result: Callable[[CandidateResult, int, int], None] | None,
) -> None:
    asked = [ask_trial(study, state, generation) for _ in range(size)]
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
        if screen_trial(state, rec):
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
        rec.values = told_values(rec)
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
        tell_study(study, trial, rec)
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
        val_loader=subset_loader(inputs.val_loader, settings.accuracy_subset),
        test_loader=None,
    )
    state = SearchState(inputs, settings, groups, full, subset, next(iter(inputs.val_loader))[0])
    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        sampler=build_sampler(settings.sampler, seed, settings.population),
    )
    reference = reference_candidate(state)
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
        distillation=(
            (cfg.recovery.temperature, cfg.recovery.distill_weight)
            if cfg.recovery.distillation
            else None
        ),
        on_rows=on_rows,
        measured_on=measured_on,
    )
    return run_search(cfg.search, inputs, on_result)
