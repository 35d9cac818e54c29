"""When one candidate may stop another's timing: the dominance rule, decided here once.

A candidate stops being timed (``latency_stop_reason`` ``dominated``) once another one that is
at least as good on everything but time (at least as accurate on validation, within the active
memory budget) is faster beyond doubt: its p50 is faster beyond both 95% CIs taken at twice
their half-widths, its mean is lower (the energy proxy's figure) and its p95 keeps within the
latency budget. The slower one can then be on no frontier and cannot be the pick, so no
decision depends on timing it further. The harness asks ``Dominance.stops`` between rounds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# CI half-widths a dominating p50 must stay apart by: a close call keeps being timed (stopping
# the candidate that looks slower at a chance low would bias its p50 up).
DOMINANCE_WIDTH = 2.0


class Interim(Protocol):
    """What the harness knows of a candidate between rounds."""

    @property
    def ci(self) -> tuple[float, float] | None: ...

    @property
    def p50_ms(self) -> float | None: ...

    @property
    def mean_ms(self) -> float | None: ...

    @property
    def p95_ms(self) -> float | None: ...


@dataclass(frozen=True)
class Contender:
    """A prepared candidate as the dominance rule sees it."""

    candidate_id: str
    accuracy: float | None  # validation top-1; None: not evaluated, never dominated
    fits_memory_budget: bool


@dataclass(frozen=True)
class Dominance:
    """Which keys may stop a key by being faster: the judgement on everything but time, and the
    p95 a key must keep to stop others (a key over the latency budget might be rejected, and
    the slower one picked)."""

    over: Mapping[str, Collection[str]]  # key -> the keys at least as good but for time
    p95_limit_ms: float | None = None

    def stops(self, key: str, interim: Mapping[str, Interim]) -> str | None:
        """The first key that beats ``key`` on time (see the module's rule), or None."""
        slow = interim[key]
        if slow.ci is None or slow.p50_ms is None or slow.mean_ms is None:
            return None
        slow_low = slow.p50_ms - DOMINANCE_WIDTH * (slow.p50_ms - slow.ci[0])
        for other in self.over.get(key, ()):
            fast = interim.get(other)
            if fast is None or fast.ci is None or fast.p50_ms is None:
                continue
            fast_high = fast.p50_ms + DOMINANCE_WIDTH * (fast.ci[1] - fast.p50_ms)
            within = self.p95_limit_ms is None or (fast.p95_ms or 0.0) <= self.p95_limit_ms
            if within and fast_high < slow_low and (fast.mean_ms or 0.0) < slow.mean_ms:
                return other
        return None


def timing_dominance(
    contenders: Sequence[Contender], latency_budget_ms: float | None = None
) -> Dominance:
    """Who may stop whose timing: per candidate, the others at least as accurate on validation
    that fit the active memory budget (``Dominance`` adds the p95 within the latency budget)."""
    accuracy = {c.candidate_id: c.accuracy for c in contenders if c.accuracy is not None}
    over = {
        c.candidate_id: [
            o.candidate_id
            for o in contenders
            if o.candidate_id != c.candidate_id
            and o.fits_memory_budget
            and accuracy.get(o.candidate_id, -1.0) >= accuracy[c.candidate_id]
        ]
        for c in contenders
        if c.candidate_id in accuracy
    }
    return Dominance(over, latency_budget_ms)
