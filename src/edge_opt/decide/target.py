"""The verdict's answer for the target device: which machine measured the latencies, which
device the verdict is for, what the pick will do there and on what evidence, whose p95 each
latency-budget check used, and how to measure on the device itself.

Three cases. A device node timed the pick: its figures lead (measured on the target). The
target is this machine (``device: host``, or a board edge-opt runs on): the measured figures
are the target's. The target is another machine and nothing measured there: the pick's
projected figures (a model, with the projection's own validation error) or why there are none.
A projected figure is reported beside the measured one, never instead of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C

HOW_TO_MEASURE = (
    "to measure on {target} itself, run edge-opt there (`device: auto`), or time on it through "
    "a device node (docs/devices.md, Measuring on the device itself)"
)


@dataclass(frozen=True)
class TargetContext:
    """What the verdict needs to know about the target besides the records.

    Attributes:
        name: the target device profile (``raspberry-pi-4``; ``host`` for this machine).
        description: one line about it.
        here: the target is the machine that ran the timing.
        unknown: precision -> why the target's rate for it is unknown (not projected).
        validation: the projection's leave-one-out check on this host (``median_abs_error_pct``,
            ``within_25pct``, ``candidates``), or None.
    """

    name: str
    description: str
    here: bool
    unknown: Mapping[str, str] = field(default_factory=dict)
    validation: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class TargetAnswer:
    """The target's side of the verdict (``lines`` for people, ``to_dict`` for summary.json)."""

    measured_on: str
    target: str
    target_description: str
    basis: str  # device-measured | measured-here | projected | not-projected | no-pick
    pick: str | None = None
    p50_ms: float | None = None  # the pick's figure on the target, on ``basis``
    p95_ms: float | None = None
    host_p50_ms: float | None = None
    error_pct: float | None = None  # the projection's median leave-one-out error
    within_25pct: float | None = None
    why_not: str | None = None
    budget_checks: dict[str, int] = field(default_factory=dict)  # whose p95 -> candidates
    how_to_measure: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """One line each: who measured and for whom; the pick on the target; the budget's
        basis; how to measure there."""
        out = [self._who()]
        pick = self._pick_line()
        if pick:
            out.append(pick)
        if self.budget_checks:
            checks = ", ".join(f"{whose} for {n}" for whose, n in self.budget_checks.items())
            out.append(f"Latency budget checked on the p95 of: {checks} candidate(s).")
        if self.how_to_measure:
            out.append(self.how_to_measure[0].upper() + self.how_to_measure[1:] + ".")
        return out

    def _who(self) -> str:
        if self.basis == "measured-here":
            return f"Measured on: {self.measured_on}, which is the target ({self.target})."
        return (
            f"Measured on: {self.measured_on}. Target: {self.target} ({self.target_description})."
        )

    def _pick_line(self) -> str | None:
        if self.pick is None:
            return None
        if self.basis == "device-measured":
            return (
                f"On the target (measured by its device node): {self.pick} p50 "
                f"{_ms(self.p50_ms)}, p95 {_ms(self.p95_ms)}."
            )
        if self.basis == "measured-here":
            return None
        if self.basis == "projected":
            quality = (
                f"the projection's leave-one-out error on this host: median "
                f"{self.error_pct:.0f}%, {self.within_25pct:.0%} of candidates within 25%"
                if self.error_pct is not None and self.within_25pct is not None
                else "the projection could not be validated on this host"
            )
            return (
                f"On {self.target} (modelled, not measured): {self.pick} projected p50 "
                f"{_ms(self.p50_ms)}, p95 {_ms(self.p95_ms)}, against {_ms(self.host_p50_ms)} "
                f"p50 measured here ({quality})."
            )
        return f"On {self.target}: {self.pick} cannot be projected: {self.why_not}."


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g} ms"


def _number(row: pd.Series, column: str) -> float | None:
    value = row.get(column)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _measured_on(frame: pd.DataFrame, row: pd.Series | None) -> str:
    if row is not None and isinstance(row.get(C.measured_on), str):
        return str(row[C.measured_on])
    if C.measured_on in frame:
        names = frame[C.measured_on].dropna()
        if not names.empty:
            return str(names.iloc[0])
    return "this machine"


def _why_not(row: pd.Series, context: TargetContext, projected: str) -> str:
    precision = str(row.get(C.precision))
    if precision in context.unknown:
        return f"{context.name}'s {precision} rate is unknown ({context.unknown[precision]})"
    if projected not in row.index:
        return "no projection was made in this run"
    return (
        f"fewer than two measured {row.get(C.runtime)} {precision} candidates to fit the "
        "projection on"
    )


def target_answer(frame: pd.DataFrame, pick: str | None, context: TargetContext) -> TargetAnswer:
    """The target's side of the verdict over the checked records ``frame`` (see module)."""
    rows = frame[frame[C.candidate_id] == pick] if pick is not None and not frame.empty else None
    row = rows.iloc[0] if rows is not None and not rows.empty else None
    budget_checks: dict[str, int] = {}
    if C.latency_budget_on in frame:
        counts = frame[C.latency_budget_on].dropna().value_counts()
        budget_checks = {str(k): int(v) for k, v in counts.items()}
    base = {
        "measured_on": _measured_on(frame, row),
        "target": context.name,
        "target_description": context.description,
        "budget_checks": budget_checks,
    }
    how = None if context.here else HOW_TO_MEASURE.format(target=context.name)
    if row is None:
        return TargetAnswer(basis="no-pick", how_to_measure=how, **base)
    host_p50 = _number(row, C.latency_p50_ms)
    if _number(row, C.device_latency_p50_ms) is not None:
        return TargetAnswer(
            basis="device-measured",
            pick=pick,
            p50_ms=_number(row, C.device_latency_p50_ms),
            p95_ms=_number(row, C.device_latency_p95_ms),
            host_p50_ms=host_p50,
            **base,
        )
    if context.here:
        return TargetAnswer(
            basis="measured-here",
            pick=pick,
            p50_ms=host_p50,
            p95_ms=_number(row, C.latency_p95_ms),
            host_p50_ms=host_p50,
            **base,
        )
    projected = f"latency_ms_projected_{context.name}"
    p50 = _number(row, projected)
    if p50 is None:
        return TargetAnswer(
            basis="not-projected",
            pick=pick,
            host_p50_ms=host_p50,
            why_not=_why_not(row, context, projected),
            how_to_measure=how,
            **base,
        )
    check = context.validation or {}
    error, within = check.get("median_abs_error_pct"), check.get("within_25pct")
    finite = error is not None and within is not None and math.isfinite(error)
    return TargetAnswer(
        basis="projected",
        pick=pick,
        p50_ms=p50,
        p95_ms=_number(row, f"latency_p95_ms_projected_{context.name}"),
        host_p50_ms=host_p50,
        error_pct=float(error) if finite else None,
        within_25pct=float(within) if finite else None,
        how_to_measure=how,
        **base,
    )
