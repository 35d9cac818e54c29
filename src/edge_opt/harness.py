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
5. two load detectors run around every round: the CPU time used by *other* processes (and
   stolen by the hypervisor) from ``/proc/stat`` minus this process's own, and a reference
   kernel (a fixed Python loop, best of 3) timed before and after the round and compared with
   the fastest it ran in this measurement: contention that the guest cannot see (a busy
   sibling hyperthread, a throttled host) shows up as a slower reference. A round during which
   others used more than ``noisy_cpu_threshold`` cores, or whose reference ran more than
   ``host_slowdown_threshold`` slower than its best, is discarded and redone for every callable,
   at most ``noisy_max_retries`` times; callables are flagged ``noisy`` when more than 20% of
   their kept rounds stayed noisy after the retries (``noisy_rounds`` counts them). Rounds
   shorter than 5 clock ticks (50 ms) cannot be judged by ``/proc/stat``;
6. rounds stop once every callable has ``min_rounds`` rounds and IQR/median below
   ``target_iqr_ratio``, or at ``max_rounds``, or when the time cap is hit.

Statistics come from the pooled per-call samples; the 95% CI of the p50 is a seeded bootstrap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from edge_opt.errors import MeasurementError

M_TRIM_THRESHOLD = -1  # glibc mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
STABLE_THRESHOLD_BYTES = 1 << 30
NOISY_SHARE = 0.2  # a candidate is flagged noisy when more of its kept rounds were noisy
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
    """Fix torch's intra-op thread count for a block, then restore it."""
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
    target_iqr_ratio: float = 0.10
    time_cap_s: float = 10.0  # per callable
    noisy_cpu_threshold: float = 0.5
    host_slowdown_threshold: float = 0.25
    noisy_max_retries: int = 2
    bootstrap_resamples: int = 1000
    seed: int = 0

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
    host_slowdown: float | None = None  # max over kept rounds: reference time / best - 1
    host_reference_ms: float | None = None  # fastest reference-kernel time in this measurement
    noisy: bool = False  # more than NOISY_SHARE of the kept rounds stayed noisy
    noisy_retries: int = 0
    noisy_rounds: int = 0  # kept rounds that were still noisy after their retries
    stop_reason: str = ""
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
    **extra: Any,
) -> LatencyStats:
    """Statistics of per-call times given in nanoseconds (pure)."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise MeasurementError("no latency samples to summarise")
    p25, p50, p75, p90, p95, p99 = np.percentile(ms, [25, 50, 75, 90, 95, 99])
    low, high = bootstrap_median_ci(ms, bootstrap_resamples, seed)
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


def iqr_ratio(samples_ns: list[int]) -> float:
    if len(samples_ns) < 4:
        return float("inf")
    q25, q50, q75 = np.percentile(samples_ns, [25, 50, 75])
    return float((q75 - q25) / max(q50, 1e-12))


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
class _Track:
    samples: list[int] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)
    faults: int = 0
    other_max: float | None = None
    slowdown_max: float | None = None
    noisy_rounds: int = 0
    retries: int = 0
    warmup_calls: int = 0
    energy_j: float | None = None


def measure_interleaved(
    calls: Mapping[str, Callable[[], object]],
    settings: HarnessSettings,
    batch_sizes: Mapping[str, int] | None = None,
    on_round: Callable[[int, int], None] | None = None,
    energy_reader: Callable[[], float | None] | None = None,
) -> dict[str, LatencyStats]:
    """Time several callables in interleaved rounds; returns one ``LatencyStats`` per key.

    Args:
        calls: zero-argument callables (e.g. ``lambda: model(x)``), keyed by candidate id.
        settings: the protocol (see the module docstring).
        batch_sizes: batch per key, recorded in the stats (default 1).
        on_round: progress callback (round index, max rounds).
        energy_reader: cumulative energy in J (e.g. ``RaplReader``); gives per-call energy.
    """
    if not calls:
        return {}
    stabilize_allocator()
    keys = list(calls)
    tracks = {k: _Track() for k in keys}
    cap = settings.time_cap_s * len(keys)
    stop = "max_rounds"
    with torch_threads(settings.threads), torch.inference_mode():
        for key in keys:
            tracks[key].warmup_calls = _warm_up(calls[key], settings)
        reference_best = min(reference_kernel_ms() for _ in range(5))
        start = time.perf_counter()
        for r in range(settings.max_rounds):
            order = keys[r % len(keys) :] + keys[: r % len(keys)]  # rotate: no fixed position
            for attempt in range(settings.noisy_max_retries + 1):
                # One round = one block per callable; the load probe spans the whole round so
                # that a noisy round is redone for every candidate (pairs stay paired).
                probe = LoadProbe()
                probe.start()
                reference_before = reference_kernel_ms()
                blocks = {}
                for key in order:
                    energy_start = energy_reader() if energy_reader else None
                    block, faults = _time_block(calls[key], settings.calls_per_round)
                    energy_end = energy_reader() if energy_reader else None
                    energy = None
                    if energy_start is not None and energy_end is not None:
                        energy = energy_end - energy_start
                    blocks[key] = (block, faults, energy)
                reference_after = reference_kernel_ms()
                other = probe.other_cores()
                reference = (reference_before + reference_after) / 2
                reference_best = min(reference_best, reference_before, reference_after)
                slowdown = reference / reference_best - 1.0
                noisy = (other is not None and other > settings.noisy_cpu_threshold) or (
                    slowdown > settings.host_slowdown_threshold
                )
                if not noisy or attempt == settings.noisy_max_retries:
                    break
                for key in keys:
                    tracks[key].retries += 1
            for key, (block, faults, energy) in blocks.items():
                track = tracks[key]
                track.samples += block
                track.faults += faults
                track.round_medians.append(float(np.median(block)) / 1e6)
                track.noisy_rounds += int(noisy)
                if energy is not None:
                    track.energy_j = (track.energy_j or 0.0) + energy
                if other is not None:
                    track.other_max = max(track.other_max or 0.0, other)
                track.slowdown_max = max(track.slowdown_max or 0.0, slowdown)
            if on_round is not None:
                on_round(r + 1, settings.max_rounds)
            if r + 1 >= settings.min_rounds and all(
                iqr_ratio(t.samples) < settings.target_iqr_ratio for t in tracks.values()
            ):
                stop = "converged"
                break
            if time.perf_counter() - start > cap:
                stop = "time_cap"
                break
    results = {}
    for key, track in tracks.items():
        results[key] = summarize_samples(
            track.samples,
            batch_size=(batch_sizes or {}).get(key, 1),
            threads=settings.threads,
            bootstrap_resamples=settings.bootstrap_resamples,
            seed=settings.seed,
            rounds=len(track.round_medians),
            warmup_calls=track.warmup_calls,
            page_faults_per_call=track.faults / max(len(track.samples), 1),
            other_cpu_cores=track.other_max,
            host_slowdown=track.slowdown_max,
            host_reference_ms=reference_best,
            noisy=track.noisy_rounds > NOISY_SHARE * len(track.round_medians),
            noisy_retries=track.retries,
            noisy_rounds=track.noisy_rounds,
            stop_reason=stop,
            energy_per_call_j=None
            if track.energy_j is None
            else track.energy_j / max(len(track.samples), 1),
            round_medians_ms=tuple(track.round_medians),
        )
    return results


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
