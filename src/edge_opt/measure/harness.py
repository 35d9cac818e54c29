"""The latency harness: every latency figure edge-opt reports is measured here.

Protocol, for one or many callables (candidates):
1. the glibc allocator is made stable (``mallopt``: no per-call mmap/munmap of activations,
   which otherwise makes batch latency bimodal and costs hundreds of page faults per call);
2. torch's thread count is fixed (and recorded);
3. each callable is warmed up in blocks of ``warmup_min`` calls until the block median moves by
   less than ``settle_tolerance`` (at most ``warmup_max_blocks`` blocks);
4. timed calls run in interleaved rounds (A B C, B C A, ...): each round times a block of
   ``calls_per_round`` calls of every callable, each call wrapped in ``perf_counter_ns``, so that
   machine drift hits all candidates alike;
5. before the rounds, the reference kernel (a fixed Python loop, best of 3) is timed
   ``REFERENCE_CALIBRATION`` times, each after a few calls of a candidate (as in a round): its
   median is this core's *typical* speed and its MAD its usual jitter; both then follow a
   sliding window of its latest reads. Around every round two load signals are read: the CPU
   time used by *other* processes (and stolen by the hypervisor) from ``/proc/stat`` minus this
   process's own, and the reference kernel before and after the round. A round is noisy when
   others used more than ``noisy_cpu_threshold`` cores, or when the reference ran more than
   ``host_slowdown_threshold`` slower than its typical time and beyond 3 MADs of it. A VM whose
   every call is jittery flags nothing (it is judged against its own recent median, never its
   single best); a lasting change of the core's speed becomes the new typical and is reported
   as ``host_drift`` (retrying cannot undo it, and interleaving keeps ratios fair). A noisy
   round is redone for every callable, at most ``noisy_max_retries`` times, and at most
   ``retry_budget`` times per measurement (the guard's cost is bounded); callables are flagged
   ``noisy`` when more than 20% of their kept rounds stayed noisy, and ``noisy_signal`` says
   which signal fired and by how much. Rounds shorter than 5 clock ticks (50 ms) cannot be
   judged by ``/proc/stat``;
6. a callable may have several *instances* (independently built: a fresh ONNX Runtime session,
   a fresh copy of the model); all are timed in the same rounds and their samples pooled;
7. a callable leaves the rounds once it has ``min_rounds`` rounds and either the 95% CI of its
   p50 is within ``precision`` of the p50 (half-width / p50: ``converged``), or more rounds
   could narrow that CI by at most ``precision`` because the rest is the spread between its
   instances (``instance_spread``: the CI of the instances' own medians, which no number of
   rounds shrinks, is within ``precision`` of the achieved one; that floor counts only when the
   instances' medians differ by at least 4x the variance their round-to-round noise explains,
   and only the unexplained part of their spread). The anchor (the reference of
   paired speedups) stays in every round. Rounds end when every callable has left, or at
   ``max_rounds``, or at the time cap.

The p50 and the distribution come from the pooled per-call samples. The p50's 95% CI is a
seeded hierarchical bootstrap: instances are resampled, then rounds within each, and the median
of the resampled round medians is taken; it therefore includes the spread between rounds and
between instances, which more calls per round do not shrink (an IQR/median target would
measure the distribution's width, not the estimate's precision).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import resource
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

try:  # a device node that measures ONNX Runtime candidates has no torch (edge-opt[device])
    import torch
except ImportError:  # pragma: no cover - exercised by tests/test_device_worker.py in a subprocess
    torch = None  # type: ignore[assignment]

from edge_opt.errors import MeasurementError

M_TRIM_THRESHOLD = -1  # glibc mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
STABLE_THRESHOLD_BYTES = 1 << 30
NOISY_SHARE = 0.2  # a candidate is flagged noisy when more of its kept rounds were noisy
MEDIAN_SE = 1.2533  # sqrt(pi/2): a median's standard error over a mean's, for normal noise
# Instances differ when their medians' variance exceeds this many times what round-to-round
# noise explains (about the 5% critical F for 3 instances and a few rounds).
INSTANCES_DIFFER = 4.0
DOMINANCE_WIDTH = 2.0  # CI half-widths a dominating p50 must stay apart by (Dominance)
REFERENCE_CALIBRATION = 15  # reference-kernel reads that set its typical time and jitter
_ALLOCATOR_STATE: dict[str, Any] | None = None


def stabilize_allocator() -> dict[str, Any]:
    """Keep freed memory in glibc's heap instead of mmap/munmap per call (idempotent).

    Same effect as starting the process with ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` set to 1 GiB, but applied in-process so every entry point
    benefits. Returns what was done, for the manifest.
    """
    global _ALLOCATOR_STATE
    if _ALLOCATOR_STATE is not None:
        return _ALLOCATOR_STATE
    state: dict[str, Any] = {"method": "none", "mmap_threshold": None, "trim_threshold": None}
    env = {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    if os.environ.get("LD_PRELOAD"):
        state["method"] = f"LD_PRELOAD={os.environ['LD_PRELOAD']} (left as is)"
    else:
        libc_name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(libc_name or "libc.so.6")
            ok_mmap = bool(libc.mallopt(M_MMAP_THRESHOLD, STABLE_THRESHOLD_BYTES))
            ok_trim = bool(libc.mallopt(M_TRIM_THRESHOLD, STABLE_THRESHOLD_BYTES))
            state.update(
                method="glibc mallopt" if ok_mmap and ok_trim else "glibc mallopt (refused)",
                mmap_threshold=STABLE_THRESHOLD_BYTES if ok_mmap else None,
                trim_threshold=STABLE_THRESHOLD_BYTES if ok_trim else None,
            )
        except (OSError, AttributeError):
            state["method"] = "unavailable (not glibc)"
    state["env"] = env
    _ALLOCATOR_STATE = state
    return state


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Fix torch's intra-op thread count for a block, then restore it (no-op without torch)."""
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# ------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class HarnessSettings:
    """How the harness measures; built from the config's ``benchmark_*`` keys."""

    threads: int = 1
    warmup_min: int = 10
    warmup_max_blocks: int = 20
    settle_tolerance: float = 0.05
    calls_per_round: int = 50
    min_rounds: int = 3
    max_rounds: int = 20
    precision: float = 0.02  # stop when the p50's 95% CI half-width is within this of the p50
    stop_dominated: bool = True  # honour a caller's Dominance (measure_interleaved)
    time_cap_s: float = 10.0  # per callable
    noisy_cpu_threshold: float = 0.5
    host_slowdown_threshold: float = 0.25
    noisy_max_retries: int = 2
    retry_budget: int | None = None  # rounds redone per measurement; None: 2 x min_rounds
    bootstrap_resamples: int = 1000
    seed: int = 0

    @property
    def max_retries_total(self) -> int:
        return self.retry_budget if self.retry_budget is not None else 2 * self.min_rounds

    @classmethod
    def from_counts(
        cls, threads: int, warmup: int, repeats: int, trials: int, seed: int = 0
    ) -> HarnessSettings:
        """Settings from the specified ``benchmark_*`` arguments (trials = minimum rounds)."""
        return cls(
            threads=threads,
            warmup_min=warmup,
            calls_per_round=repeats,
            min_rounds=trials,
            max_rounds=max(trials, 10),
            seed=seed,
        )

    def __post_init__(self) -> None:
        for name in ("threads", "calls_per_round", "min_rounds", "max_rounds", "warmup_max_blocks"):
            if getattr(self, name) < 1:
                raise MeasurementError(f"{name}: {getattr(self, name)} must be >= 1")
        if self.warmup_min < 0 or self.noisy_max_retries < 0:
            raise MeasurementError("warmup_min and noisy_max_retries must be >= 0")
        if not 0 < self.precision < 1:
            raise MeasurementError(f"precision: {self.precision} must be in (0, 1), e.g. 0.02")
        if self.max_rounds < self.min_rounds:
            raise MeasurementError(
                f"max_rounds ({self.max_rounds}) must be >= min_rounds ({self.min_rounds})"
            )


@dataclass(frozen=True)
class LatencyStats:
    """Distribution of per-call wall times (ms) and how it was obtained."""

    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    iqr_ms: float
    p50_ci95_low_ms: float
    p50_ci95_high_ms: float
    n: int
    batch_size: int
    threads: int
    rounds: int = 1
    warmup_calls: int = 0
    page_faults_per_call: float | None = None
    other_cpu_cores: float | None = None  # max over kept rounds
    host_slowdown: float | None = None  # max over kept rounds: reference / its typical - 1
    host_reference_ms: float | None = None  # the reference kernel's typical time at the start
    host_drift: float | None = None  # change of that typical time by the end (> 0: slower)
    noisy: bool = False  # more than NOISY_SHARE of the kept rounds stayed noisy
    noisy_retries: int = 0
    noisy_rounds: int = 0  # kept rounds that were still noisy after their retries
    noisy_signal: str = ""  # which load signal fired in the noisy kept rounds, and how much
    stop_reason: str = ""
    dominated_by: str | None = None  # stop_reason dominated: the key that beat it
    instances: int = 1  # independently built instances timed (fresh session / model copy)
    p50_precision: float | None = None  # achieved 95% CI half-width / p50
    energy_per_call_j: float | None = None  # from RAPL counters when the host exposes them
    round_medians_ms: tuple[float, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("round_medians_ms")
        return data


def bootstrap_median_ci(
    samples: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the median (seeded, so reruns give the same interval)."""
    if samples.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, samples.size, size=(resamples, samples.size))
    medians = np.median(samples[idx], axis=1)
    alpha = (1 - level) / 2
    return (float(np.quantile(medians, alpha)), float(np.quantile(medians, 1 - alpha)))


def summarize_samples(
    samples_ns: np.ndarray | list[int],
    batch_size: int,
    threads: int,
    bootstrap_resamples: int = 1000,
    seed: int = 0,
    p50_ci: tuple[float, float] | None = None,
    **extra: Any,
) -> LatencyStats:
    """Statistics of per-call times given in nanoseconds (pure). The p50's CI is ``p50_ci``
    if given (the harness's, over rounds and instances), else a bootstrap over the calls."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise MeasurementError("no latency samples to summarise")
    p25, p50, p75, p90, p95, p99 = np.percentile(ms, [25, 50, 75, 90, 95, 99])
    low, high = p50_ci or bootstrap_median_ci(ms, bootstrap_resamples, seed)
    return LatencyStats(
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p95_ms=float(p95),
        p99_ms=float(p99),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        iqr_ms=float(p75 - p25),
        p50_ci95_low_ms=low,
        p50_ci95_high_ms=high,
        n=int(ms.size),
        batch_size=batch_size,
        threads=threads,
        **extra,
    )


def hierarchical_median_ci(
    round_medians: np.ndarray, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """95% CI of the median over ``round_medians`` of shape (instances, rounds).

    Seeded two-level bootstrap: instances are drawn with replacement, then rounds within each
    drawn instance, and the median of the drawn values is taken. With one instance this is the
    bootstrap over rounds. Needs at least 2 values in all.
    """
    values = np.atleast_2d(np.asarray(round_medians, dtype=np.float64))
    instances, rounds = values.shape
    rng = np.random.default_rng(seed)
    pick_instance = rng.integers(0, instances, size=(resamples, instances, 1))
    pick_round = rng.integers(0, rounds, size=(resamples, instances, rounds))
    drawn = values[pick_instance, pick_round].reshape(resamples, -1)
    medians = np.median(drawn, axis=1)
    alpha = (1 - level) / 2
    return (float(np.quantile(medians, alpha)), float(np.quantile(medians, 1 - alpha)))


def relative_halfwidth(low: float, high: float, center: float) -> float:
    return (high - low) / 2 / max(abs(center), 1e-12)


# ------------------------------------------------------------------------------ measurement
def _time_block(fn: Callable[[], object], calls: int) -> tuple[list[int], int]:
    clock = time.perf_counter_ns
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    samples = []
    for _ in range(calls):
        start = clock()
        fn()
        samples.append(clock() - start)
    return samples, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def _call_for(fn: Callable[[], object], calls: int, budget_s: float) -> None:
    """Call ``fn`` ``calls`` times, or fewer once ``budget_s`` has passed (at least once)."""
    end = time.perf_counter() + budget_s
    for _ in range(calls):
        fn()
        if time.perf_counter() >= end:
            return


def _warm_up(fn: Callable[[], object], settings: HarnessSettings) -> int:
    """Run blocks of calls until the block median settles; returns the calls made."""
    if settings.warmup_min == 0:
        return 0
    previous, calls = None, 0
    for _ in range(settings.warmup_max_blocks):
        block, _ = _time_block(fn, settings.warmup_min)
        calls += len(block)
        median = float(np.median(block))
        if previous is not None and abs(median - previous) <= settings.settle_tolerance * previous:
            break
        previous = median
    return calls


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
                _call_for(between[i % len(between)], calls, budget_s)
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
class _RoundLoad:
    """The load signals read around one round, and the verdict."""

    other_cores: float | None
    slowdown: float
    cpu_fired: bool
    reference_fired: bool

    @property
    def noisy(self) -> bool:
        return self.cpu_fired or self.reference_fired


@dataclass
class _Track:
    """One callable's kept rounds, over all its instances."""

    instances: int
    samples: list[int] = field(default_factory=list)
    round_medians: list[list[float]] = field(default_factory=list)  # [round][instance], ms
    faults: int = 0
    other_max: float | None = None
    slowdown_max: float | None = None
    noisy_rounds: int = 0
    cpu_fired: float | None = None  # largest other-process load in a noisy kept round
    reference_fired: float | None = None  # largest reference slowdown in a noisy kept round
    retries: int = 0
    warmup_calls: int = 0
    energy_j: float | None = None
    done: bool = False
    done_reason: str = ""  # converged | instance_spread | dominated, once done
    dominated_by: str | None = None
    ci: tuple[float, float] | None = None  # at the last settle: the p50's 95% CI (ms),
    p50_ms: float | None = None  # the p50,
    mean_ms: float | None = None  # the mean
    p95_ms: float | None = None  # and the p95

    def per_round(self) -> list[float]:
        """One figure per round (median over instances): what paired speedups compare."""
        return [float(np.median(r)) for r in self.round_medians]

    def keep(self, blocks: list[tuple[list[int], int, float | None]], load: _RoundLoad) -> None:
        self.round_medians.append([float(np.median(b)) / 1e6 for b, _, _ in blocks])
        for block, faults, energy in blocks:
            self.samples += block
            self.faults += faults
            if energy is not None:
                self.energy_j = (self.energy_j or 0.0) + energy
        if load.other_cores is not None:
            self.other_max = max(self.other_max or 0.0, load.other_cores)
        self.slowdown_max = max(self.slowdown_max or 0.0, load.slowdown)
        if load.noisy:
            self.noisy_rounds += 1
            if load.cpu_fired:
                self.cpu_fired = max(self.cpu_fired or 0.0, load.other_cores or 0.0)
            if load.reference_fired:
                self.reference_fired = max(self.reference_fired or 0.0, load.slowdown)

    def p50_ci(self, settings: HarnessSettings) -> tuple[float, float]:
        if len(self.round_medians) * self.instances < 2:
            samples = np.asarray(self.samples, dtype=np.float64) / 1e6
            return bootstrap_median_ci(samples, settings.bootstrap_resamples, settings.seed)
        by_instance = np.asarray(self.round_medians).T  # (instances, rounds)
        return hierarchical_median_ci(by_instance, settings.bootstrap_resamples, settings.seed)

    def instance_floor(self, settings: HarnessSettings) -> float:
        """The CI half-width (relative) that infinitely many rounds would leave: the bootstrap
        over the instances' own medians, scaled down to the part of their spread that their
        round-to-round noise does not explain. 0 with one instance or fewer than 2 rounds."""
        values = np.asarray(self.round_medians)  # (rounds, instances)
        rounds = values.shape[0]
        if self.instances < 2 or rounds < 2:
            return 0.0
        per_instance = np.median(values, axis=0)
        observed = float(np.var(per_instance, ddof=1))
        if observed <= 0:
            return 0.0
        # Standard error of a median of `rounds` values: 1.2533 sd / sqrt(rounds).
        noise = float(np.mean((MEDIAN_SE * np.std(values, axis=0, ddof=1)) ** 2) / rounds)
        if observed < INSTANCES_DIFFER * noise:  # not shown to differ: more rounds may tell
            return 0.0
        real_share = math.sqrt((observed - noise) / observed)
        low, high = hierarchical_median_ci(
            per_instance[:, None], settings.bootstrap_resamples, settings.seed
        )
        return real_share * relative_halfwidth(low, high, float(np.median(self.samples)) / 1e6)

    def settle(self, settings: HarnessSettings) -> None:
        """Done once the p50's CI is within ``precision``, or once more rounds could narrow it by
        at most ``precision`` because what is left is the spread between instances."""
        self.ci = self.p50_ci(settings)
        samples = np.asarray(self.samples, dtype=np.float64) / 1e6
        self.p50_ms = float(np.median(samples))
        self.mean_ms, self.p95_ms = float(samples.mean()), float(np.percentile(samples, 95))
        achieved = relative_halfwidth(*self.ci, self.p50_ms)
        if achieved <= settings.precision:
            self.done, self.done_reason = True, "converged"
        elif achieved - self.instance_floor(settings) <= settings.precision:
            self.done, self.done_reason = True, "instance_spread"

    def signal(self, settings: HarnessSettings) -> str:
        parts = []
        if self.cpu_fired is not None:
            parts.append(
                f"other processes used {self.cpu_fired:.2f} cores "
                f"(threshold {settings.noisy_cpu_threshold:g})"
            )
        if self.reference_fired is not None:
            parts.append(
                f"reference kernel {self.reference_fired:+.0%} vs its typical time "
                f"(threshold {settings.host_slowdown_threshold:.0%})"
            )
        return "; ".join(parts)


@dataclass(frozen=True)
class Dominance:
    """Which keys may stop a key by being faster: the caller's judgement on everything but time
    (e.g. at least as accurate, within the memory budget), and the p95 a key must keep to stop
    others (a latency budget: a key over it might be rejected, and the slower one picked)."""

    over: Mapping[str, Collection[str]]  # key -> the keys at least as good but for time
    p95_limit_ms: float | None = None

    def stops(self, key: str, tracks: Mapping[str, _Track]) -> str | None:
        """The first key that beats ``key`` on time: a p50 faster beyond both 95% CIs taken at
        twice their half-widths (a close call keeps being timed: stopping the candidate that
        looks slower at a chance low would bias its p50 up), a lower mean (the energy proxy's
        figure), and a p95 within the limit."""
        slow = tracks[key]
        if slow.ci is None or slow.p50_ms is None or slow.mean_ms is None:
            return None
        slow_low = slow.p50_ms - DOMINANCE_WIDTH * (slow.p50_ms - slow.ci[0])
        for other in self.over.get(key, ()):
            fast = tracks.get(other)
            if fast is None or fast.ci is None or fast.p50_ms is None:
                continue
            fast_high = fast.p50_ms + DOMINANCE_WIDTH * (fast.ci[1] - fast.p50_ms)
            within = self.p95_limit_ms is None or (fast.p95_ms or 0.0) <= self.p95_limit_ms
            if within and fast_high < slow_low and (fast.mean_ms or 0.0) < slow.mean_ms:
                return other
        return None


def _stop_dominated(tracks: Mapping[str, _Track], dominance: Dominance, anchor: str | None) -> None:
    for key, track in tracks.items():
        if track.done or key == anchor:
            continue
        winner = dominance.stops(key, tracks)
        if winner is not None:
            track.done, track.done_reason, track.dominated_by = True, "dominated", winner


def _read_load(
    probe: LoadProbe, before: float, after: float, ref: ReferenceBaseline, s: HarnessSettings
) -> _RoundLoad:
    other = probe.other_cores()
    reference = (before + after) / 2
    load = _RoundLoad(
        other,
        ref.slowdown(reference),
        other is not None and other > s.noisy_cpu_threshold,
        ref.is_slow(reference, s.host_slowdown_threshold),
    )
    ref.observe(before, after)  # judged first, then part of the local typical value
    return load


def _normalise_calls(
    calls: Mapping[str, Callable[[], object] | Sequence[Callable[[], object]]],
) -> dict[str, list[Callable[[], object]]]:
    out = {}
    for key, value in calls.items():
        instances = list(value) if isinstance(value, Sequence) else [value]
        if not instances:
            raise MeasurementError(f"{key}: no instance to time")
        out[key] = instances
    return out


def measure_interleaved(
    calls: Mapping[str, Callable[[], object] | Sequence[Callable[[], object]]],
    settings: HarnessSettings,
    batch_sizes: Mapping[str, int] | None = None,
    on_round: Callable[[int, int], None] | None = None,
    energy_reader: Callable[[], float | None] | None = None,
    anchor: str | None = None,
    raw_samples: dict[str, list[float]] | None = None,
    dominance: Dominance | None = None,
) -> dict[str, LatencyStats]:
    """Time several callables in interleaved rounds; returns one ``LatencyStats`` per key.

    Args:
        calls: zero-argument callables (e.g. ``lambda: model(x)``), keyed by candidate id; a
            sequence of callables is several independently built instances of one candidate.
        settings: the protocol (see the module docstring).
        batch_sizes: batch per key, recorded in the stats (default 1).
        on_round: progress callback (round index, max rounds).
        energy_reader: cumulative energy in J (e.g. ``RaplReader``); gives per-call energy.
        anchor: a key timed in every round even once tight (the reference of speedups).
        raw_samples: if given, filled with every kept per-call time (ms) per key.
        dominance: if given, a key stops being timed (``dominated``) once a key at least as
            good on everything but time is faster (``Dominance.stops``): more precision could
            not put it on a frontier or make it the pick. The anchor is never stopped so.
    """
    if not calls:
        return {}
    stabilize_allocator()
    instances = _normalise_calls(calls)
    keys = list(instances)
    tracks = {k: _Track(len(instances[k])) for k in keys}
    cap = settings.time_cap_s * len(keys)
    stop, retries_left = "max_rounds", settings.max_retries_total
    with torch_threads(settings.threads), _inference_mode():
        for key in keys:
            tracks[key].warmup_calls = sum(_warm_up(fn, settings) for fn in instances[key])
        reference = ReferenceBaseline.calibrate([instances[k][0] for k in keys])
        start = time.perf_counter()
        for r in range(settings.max_rounds):
            active = [k for k in keys if not tracks[k].done or k == anchor]
            order = active[r % len(active) :] + active[: r % len(active)]  # no fixed position
            for attempt in range(settings.noisy_max_retries + 1):
                # One round = one block per instance of every active callable; the load signals
                # span the whole round, so a noisy round is redone for all (pairs stay paired).
                probe = LoadProbe()
                probe.start()
                before = reference_kernel_ms()
                blocks: dict[str, list[tuple[list[int], int, float | None]]] = {}
                for key in order:
                    blocks[key] = [_timed(fn, settings, energy_reader) for fn in instances[key]]
                load = _read_load(probe, before, reference_kernel_ms(), reference, settings)
                if not load.noisy or attempt == settings.noisy_max_retries or not retries_left:
                    break
                retries_left -= 1
                for key in active:
                    tracks[key].retries += 1
            for key, key_blocks in blocks.items():
                tracks[key].keep(key_blocks, load)
            if on_round is not None:
                on_round(r + 1, settings.max_rounds)
            if r + 1 >= settings.min_rounds:
                for key in active:
                    tracks[key].settle(settings)
                if dominance is not None and settings.stop_dominated:
                    _stop_dominated(tracks, dominance, anchor)
                if all(t.done for t in tracks.values()):
                    stop = "converged"
                    break
            if time.perf_counter() - start > cap:
                stop = "time_cap"
                break
    if raw_samples is not None:
        raw_samples.update({k: [ns / 1e6 for ns in t.samples] for k, t in tracks.items()})
    return {
        key: _summarise(track, settings, (batch_sizes or {}).get(key, 1), reference, stop)
        for key, track in tracks.items()
    }


def _inference_mode() -> Any:
    return torch.inference_mode() if torch is not None else nullcontext()


def _timed(
    fn: Callable[[], object],
    settings: HarnessSettings,
    energy_reader: Callable[[], float | None] | None,
) -> tuple[list[int], int, float | None]:
    energy_start = energy_reader() if energy_reader else None
    block, faults = _time_block(fn, settings.calls_per_round)
    energy_end = energy_reader() if energy_reader else None
    energy = None
    if energy_start is not None and energy_end is not None:
        energy = energy_end - energy_start
    return block, faults, energy


def _summarise(
    track: _Track,
    settings: HarnessSettings,
    batch_size: int,
    reference: ReferenceBaseline,
    stop: str,
) -> LatencyStats:
    rounds = len(track.round_medians)
    low, high = track.p50_ci(settings)
    stats = summarize_samples(
        track.samples,
        batch_size=batch_size,
        threads=settings.threads,
        p50_ci=(low, high),  # not a bootstrap over every call (1 s per run, then replaced)
        rounds=rounds,
        warmup_calls=track.warmup_calls,
        page_faults_per_call=track.faults / max(len(track.samples), 1),
        other_cpu_cores=track.other_max,
        host_slowdown=track.slowdown_max,
        host_reference_ms=reference.first_typical_ms,
        host_drift=reference.drift,
        noisy=track.noisy_rounds > NOISY_SHARE * rounds,
        noisy_retries=track.retries,
        noisy_rounds=track.noisy_rounds,
        noisy_signal=track.signal(settings),
        stop_reason=track.done_reason if track.done else stop,
        dominated_by=track.dominated_by,
        energy_per_call_j=None
        if track.energy_j is None
        else track.energy_j / max(len(track.samples), 1),
        round_medians_ms=tuple(track.per_round()),
        instances=track.instances,
    )
    return replace(
        stats,
        p50_ci95_low_ms=min(low, stats.p50_ms),
        p50_ci95_high_ms=max(high, stats.p50_ms),
        p50_precision=relative_halfwidth(low, high, stats.p50_ms),
    )


def measure_callable(
    fn: Callable[[], object], settings: HarnessSettings, batch_size: int = 1
) -> LatencyStats:
    """Time one callable with the full protocol."""
    return measure_interleaved({"_": fn}, settings, {"_": batch_size})["_"]


@dataclass(frozen=True)
class PairedSpeedup:
    """Speedup of a candidate over a reference from rounds measured side by side."""

    median: float
    q25: float
    q75: float
    rounds: int


def paired_speedup(reference: LatencyStats, candidate: LatencyStats) -> PairedSpeedup:
    """reference / candidate, round by round (> 1 means the candidate is faster)."""
    pairs = min(len(reference.round_medians_ms), len(candidate.round_medians_ms))
    if pairs == 0:
        return PairedSpeedup(float("nan"), float("nan"), float("nan"), 0)
    ref = np.asarray(reference.round_medians_ms[:pairs])
    cand = np.asarray(candidate.round_medians_ms[:pairs])
    ratios = ref / np.maximum(cand, 1e-12)
    q25, q50, q75 = np.percentile(ratios, [25, 50, 75])
    return PairedSpeedup(float(q50), float(q25), float(q75), pairs)
