"""Cheap-first screening of one trial, before anything is timed.

Stages, cheapest first; the first that stops a trial is named in its row (``search_stage``):
1. ``duplicate``: the same ratios, precision and runtime as an earlier trial (its result is
   reused);
2. ``size``: the pruned model's parameter bytes at the precision (a lower bound of what is
   deployed) exceed the active memory budget: nothing is built;
3. ``roofline``: the roofline time on this host (a lower bound of a call's latency) exceeds
   ``search.latency_budget_ms``: nothing is built;
4. the candidate is built with the grid's ``prepare_candidate`` and its accuracy measured on
   the first ``search.accuracy_subset`` validation images; a built size over the budget stops
   it at ``size`` too;
5. ``dominated``: an already timed candidate (or another of the same generation) is at least
   as accurate (against the Wilson upper bound of this one's subset accuracy), as fast (against
   this one's latency estimate) and as small: it is not timed.
The survivors are timed side by side (``edge_opt.search.engine``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from edge_opt.analysis.device_profiles import HardwareProfile
from edge_opt.analysis.projection import fit_projection, operator_count, roofline_time_ms
from edge_opt.candidates.preparation import PreparedCandidate
from edge_opt.candidates.record import BYTES_PER_MB
from edge_opt.decide.budgets import budget_figure_mb
from edge_opt.measure.metrics import wilson_interval

RatioKey = tuple[tuple[float, ...], str, str]  # (ratios in group order, precision, runtime)


@dataclass
class TrialRecord:
    """One trial as it moves through the stages."""

    number: int
    ratios: dict[str, float]
    precision: str
    runtime: str
    generation: int
    candidate_id: str = ""
    level: float = 0.0
    stage: str = "pending"  # the stage that stopped it, or "timed"
    reason: str | None = None
    variant: nn.Module | None = None
    layers: pd.DataFrame | None = None
    size_lower_mb: float = 0.0
    roofline_ms: float = 0.0
    latency_estimate_ms: float | None = None
    prepared: PreparedCandidate | None = None
    subset_accuracy: float | None = None
    subset_accuracy_high: float | None = None
    values: tuple[float, float, float] | None = None  # told: accuracy, latency ms, size MiB
    constraints: tuple[float, float] = (0.0, 0.0)  # size excess MiB, latency excess ms
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> RatioKey:
        return (tuple(self.ratios.values()), self.precision, self.runtime)

    @property
    def operators(self) -> int:
        return operator_count(self.layers) if self.layers is not None else 0


def trial_id(number: int, level: float, precision: str, runtime: str) -> str:
    """Stable id of a trial: ``t007-p31-int8-eager`` (trial number, overall share removed)."""
    return f"t{number:03d}-p{round(level * 100):02d}-{precision}-{runtime}"


def prefilter(
    trial: TrialRecord,
    budget_mb: float,
    latency_budget_ms: float | None,
    host: HardwareProfile,
) -> bool:
    """Stages 2 and 3 from the layer table alone; True when the trial may be built."""
    if trial.layers is None:
        raise ValueError("prefilter needs the trial's layer table")
    trial.size_lower_mb = float(trial.layers["parameter_bytes"].sum()) / BYTES_PER_MB
    trial.roofline_ms = roofline_time_ms(trial.layers, host, trial.precision)
    latency_excess = 0.0
    if latency_budget_ms is not None:
        latency_excess = trial.roofline_ms - latency_budget_ms
    trial.constraints = (trial.size_lower_mb - budget_mb, latency_excess)
    if trial.size_lower_mb > budget_mb:
        trial.stage = "size"
        trial.reason = (
            f"parameters alone take {trial.size_lower_mb:.4f} MiB at {trial.precision}, over the "
            f"active budget of {budget_mb:g} MiB (not built)"
        )
        return False
    if latency_budget_ms is not None and trial.roofline_ms > latency_budget_ms:
        trial.stage = "roofline"
        trial.reason = (
            f"its roofline lower bound is {trial.roofline_ms:.4f} ms per call, over "
            f"search.latency_budget_ms {latency_budget_ms:g} (not built)"
        )
        return False
    return True


def check_built(trial: TrialRecord, budget_mb: float, metric: str) -> bool:
    """Stage 4's verdict on a built, subset-evaluated trial; True when it may go on."""
    p = trial.prepared
    if p is None or p.accuracy is None:
        raise ValueError("check_built needs an evaluated candidate")
    trial.subset_accuracy = p.accuracy.accuracy
    trial.subset_accuracy_high = wilson_interval(p.accuracy.correct, p.accuracy.total)[1]
    size_mb = p.size_bytes / BYTES_PER_MB
    figure = budget_figure_mb(p.size_bytes, p.peak_bytes, metric)
    constrained = size_mb if figure is None else figure
    trial.constraints = (constrained - budget_mb, trial.constraints[1])
    if constrained > budget_mb:
        trial.stage = "size"
        trial.reason = (
            f"built, it takes {constrained:.4f} MiB ({metric}), over the active budget of "
            f"{budget_mb:g} MiB (not timed)"
        )
        return False
    return True


@dataclass(frozen=True)
class TimedPoint:
    """A timed candidate as the dominance screen sees it."""

    candidate_id: str
    accuracy: float
    latency_ms: float
    size_mb: float
    runtime: str
    precision: str
    roofline_ms: float
    operators: int


def estimate_latency_ms(trial: TrialRecord, timed: Sequence[TimedPoint]) -> float:
    """p50 estimate: alpha x roofline + beta x operators fitted
    (``edge_opt.analysis.projection``) on the timed candidates of the same runtime and precision;
    with one, its latency scaled by the operator count; with none, any timed candidate's fit; with
    nothing timed, the roofline (a lower bound, so an untimed trial is never screened out by a guess
    that flatters others)."""
    for pool in (
        [t for t in timed if (t.runtime, t.precision) == (trial.runtime, trial.precision)],
        list(timed),
    ):
        if len(pool) >= 2:
            model = fit_projection(
                np.array([t.roofline_ms for t in pool]),
                np.array([t.operators for t in pool]),
                np.array([t.latency_ms for t in pool]),
            )
            return max(model.predict(trial.roofline_ms, trial.operators), trial.roofline_ms)
        if len(pool) == 1:
            only = pool[0]
            return max(only.latency_ms * trial.operators / max(only.operators, 1), 0.0)
    return trial.roofline_ms


def screen_dominated(
    survivors: Sequence[TrialRecord], timed: Sequence[TimedPoint]
) -> list[TrialRecord]:
    """Stage 5: the survivors no timed point and no other survivor dominates (to be timed).

    A survivor is judged optimistically (its accuracy's Wilson upper bound), its rivals by
    what they showed (timed: measured; survivors: subset accuracy and latency estimate).
    """
    keep = []
    for trial in survivors:
        mine = (trial.subset_accuracy_high or 0.0, trial.latency_estimate_ms or 0.0, _mb(trial))
        rivals = [(t.candidate_id, (t.accuracy, t.latency_ms, t.size_mb)) for t in timed]
        rivals += [
            (o.candidate_id, (o.subset_accuracy or 0.0, o.latency_estimate_ms or 0.0, _mb(o)))
            for o in survivors
            if o is not trial
        ]
        beaten_by = next((cid for cid, other in rivals if _better(other, mine)), None)
        if beaten_by is None:
            keep.append(trial)
        else:
            trial.stage = "dominated"
            trial.reason = f"dominated by {beaten_by} before timing (accuracy, latency, size)"
    return keep


def _mb(trial: TrialRecord) -> float:
    p = trial.prepared
    return p.size_bytes / BYTES_PER_MB if p is not None else trial.size_lower_mb


def _better(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """a dominates b: accuracy up, latency and size down."""
    no_worse = a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2]
    return no_worse and (a[0] > b[0] or a[1] < b[1] or a[2] < b[2])


def ratio_columns(ratios: Mapping[str, float]) -> dict[str, float]:
    return {f"ratio.{name}": value for name, value in ratios.items()}


__all__ = [
    "TimedPoint",
    "TrialRecord",
    "check_built",
    "estimate_latency_ms",
    "prefilter",
    "ratio_columns",
    "screen_dominated",
    "trial_id",
]
