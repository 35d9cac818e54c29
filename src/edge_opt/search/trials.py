"""One trial of the search: asked of Optuna, pruned by its group ratios, fine-tuned, screened
cheapest first and built (``edge_opt.search.screen``), and told back. Also the reference
candidate every generation times."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from edge_opt.candidates.plan import REFERENCE_ID
from edge_opt.candidates.preparation import (
    PreparedCandidate,
    build_candidate,
    level_reference,
    new_candidate,
)
from edge_opt.compress.distillation import Distillation
from edge_opt.compress.precisions import BYTES_PER_ELEMENT
from edge_opt.compress.training import train_model
from edge_opt.measure.memory import BYTES_PER_MB
from edge_opt.models.layers import estimate_layerwise_stats
from edge_opt.runtimes.registry import unsupported_reason
from edge_opt.search.screen import (
    TrialRecord,
    check_built,
    prefilter,
    trial_id,
)
from edge_opt.search.space import prune_groups, removed_fraction
from edge_opt.search.state import SearchState

log = logging.getLogger(__name__)


def ask_trial(study: Any, state: SearchState, generation: int) -> tuple[Any, TrialRecord]:
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


def trial_variant(state: SearchState, rec: TrialRecord, example: torch.Tensor) -> nn.Module:
    key = tuple(rec.ratios.values())
    if key not in state.variants:
        inputs = state.inputs
        state.variants[key] = prune_groups(
            inputs.baseline, rec.ratios, example, inputs.channel_multiple
        )
    return state.variants[key]


def fine_tuned(state: SearchState, ratios: tuple[float, ...], model: nn.Module) -> nn.Module:
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
        objective = None
        if inputs.distillation is not None:  # the baseline is the teacher, as in the grid
            objective = Distillation.of(inputs.baseline, *inputs.distillation)
        state.variants[key] = train_model(
            model,
            inputs.train_loader,
            epochs,
            inputs.learning_rate,
            "cpu",
            seed=inputs.seed,
            threads=inputs.train_threads,
            objective=objective,
        ).eval()
    return state.variants[key]


def screen_trial(state: SearchState, rec: TrialRecord) -> bool:
    """Stages 2-4 for one trial; True when it survives to the dominance screen."""
    inputs, plan = state.inputs, state.inputs.plan
    example = torch.zeros(1, *inputs.input_shape)
    variant = trial_variant(state, rec, example)
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
    rec.variant = fine_tuned(state, tuple(rec.ratios.values()), variant)
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


def reference_candidate(state: SearchState) -> PreparedCandidate:
    """The unpruned fp32 eager model: timed in every generation, anchor of the speedups."""
    inputs = state.inputs
    macs = int(estimate_layerwise_stats(inputs.baseline, 1, inputs.input_shape)["macs"].sum())
    ctx = replace(state.full, workdir=inputs.workdir / REFERENCE_ID)
    zero = tuple(0.0 for _ in state.groups)
    model = fine_tuned(state, zero, inputs.baseline)
    ref = level_reference(model, state.check_batch)
    p = new_candidate(model, 0.0, "fp32", "eager", inputs.plan, macs)
    return build_candidate(model, p, ctx, ref)


def tell_study(study: Any, trial: Any, rec: TrialRecord) -> None:
    import optuna

    if rec.values is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    trial.set_constraint("size_over_budget_mb", rec.constraints[0])
    trial.set_constraint("roofline_over_budget_ms", rec.constraints[1])
    study.tell(trial, list(rec.values))


def told_values(rec: TrialRecord) -> tuple[float, float, float] | None:
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
