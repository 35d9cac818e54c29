"""The noise guard's signals: CPU used by other processes (``/proc/stat``), and a fixed
reference kernel whose slowdown against its own typical time (not its single best) marks a
round as noisy."""

from __future__ import annotations

import os
import resource
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

REFERENCE_CALIBRATION = 15  # reference-kernel reads that set its typical time and jitter
# ------------------------------------------------------------------------------ load sampling
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_cpu_seconds() -> float | None:
    """CPU seconds all processes spent busy since boot (user+nice+system+irq+softirq+steal)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    values = [int(v) for v in fields[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class LoadProbe:
    """Cores' worth of CPU used by other processes during a window."""

    wall: float = 0.0
    busy: float | None = None
    own: float = 0.0

    def start(self) -> None:
        self.wall = time.perf_counter()
        self.busy, self.own = _busy_cpu_seconds(), _own_cpu_seconds()

    def other_cores(self) -> float | None:
        busy = _busy_cpu_seconds()
        if busy is None or self.busy is None:
            return None
        wall = max(time.perf_counter() - self.wall, 1e-9)
        # /proc/stat ticks at 1/CLK_TCK: windows shorter than a few ticks read as 0 or spikes.
        if wall < 5.0 / _CLK_TCK:
            return None
        other = (busy - self.busy) - (_own_cpu_seconds() - self.own)
        return max(0.0, other / wall)


def reference_kernel_ms(repeats: int = 3) -> float:
    """Best-of-``repeats`` time (ms) of a fixed pure-Python loop: a speed probe of this core."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        total = 0
        for i in range(5000):
            total += i
        best = min(best, (time.perf_counter_ns() - start) / 1e6)
    return best


def call_for(fn: Callable[[], object], calls: int, budget_s: float) -> None:
    """Call ``fn`` ``calls`` times, or fewer once ``budget_s`` has passed (at least once)."""
    end = time.perf_counter() + budget_s
    for _ in range(calls):
        fn()
        if time.perf_counter() >= end:
            return


@dataclass
class ReferenceBaseline:
    """The reference kernel's typical time on this core and its usual jitter (ms), over a
    sliding window of its most recent reads.

    A round is judged against this *local* typical value: a transient burst (another process
    for a few hundred ms) stands out and its round is redone, while a lasting change of the
    machine's speed (a host frequency shift) becomes the new typical after a window, since
    retrying cannot undo it and interleaved rounds already keep ratios fair. Such a drift is
    reported on its own (``drift``), not as noise.
    """

    reads: deque[float]
    first_typical_ms: float

    @classmethod
    def calibrate(
        cls, between: Sequence[Callable[[], object]] = (), calls: int = 10, budget_s: float = 0.005
    ) -> ReferenceBaseline:
        """Read the reference ``REFERENCE_CALIBRATION`` times, each after ``calls`` calls of
        one of ``between`` (in turn; fewer once ``budget_s`` is spent, so batch-128 calls cost
        one call, not ten): in a round the reference also follows model calls, which leave
        caches and predictors colder than back-to-back reads would."""
        times: deque[float] = deque(maxlen=REFERENCE_CALIBRATION)
        for i in range(REFERENCE_CALIBRATION):
            if between:
                call_for(between[i % len(between)], calls, budget_s)
            times.append(reference_kernel_ms())
        return cls(times, float(np.median(times)))

    @property
    def typical_ms(self) -> float:
        return float(np.median(self.reads))

    @property
    def mad_ms(self) -> float:
        return float(np.median(np.abs(np.asarray(self.reads) - self.typical_ms)))

    @property
    def drift(self) -> float:
        """Relative change of the typical time since calibration (> 0: the core got slower)."""
        return self.typical_ms / max(self.first_typical_ms, 1e-12) - 1.0

    def slowdown(self, reference_ms: float) -> float:
        return reference_ms / max(self.typical_ms, 1e-12) - 1.0

    def is_slow(self, reference_ms: float, threshold: float) -> bool:
        beyond_jitter = reference_ms > self.typical_ms + 3 * 1.4826 * self.mad_ms
        return self.slowdown(reference_ms) > threshold and beyond_jitter

    def observe(self, *reads_ms: float) -> None:
        self.reads.extend(reads_ms)


@dataclass(frozen=True)
class RoundLoad:
    """The load signals read around one round, and the verdict."""

    other_cores: float | None
    slowdown: float
    cpu_fired: bool
    reference_fired: bool

    @property
    def noisy(self) -> bool:
        return self.cpu_fired or self.reference_fired
