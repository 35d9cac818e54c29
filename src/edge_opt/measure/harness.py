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
measure the distribution's width, not the estimate's precision)."""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from edge_opt.errors import MeasurementError
from edge_opt.measure import noise
from edge_opt.measure.noise import LoadProbe, ReferenceBaseline, RoundLoad
from edge_opt.measure.process import stabilize_allocator, torch_threads
from edge_opt.measure.statistics import (
    MEDIAN_SE,
    NOISY_SHARE,
    LatencyStats,
    bootstrap_median_ci,
    hierarchical_median_ci,
    relative_halfwidth,
    summarize_samples,
)

try:  # a device node that measures ONNX Runtime candidates has no torch
    import torch
except ImportError:  # pragma: no cover - tests/orchestrate/test_device_worker.py
    torch = None  # type: ignore[assignment]


# Instances differ when their medians' variance exceeds this many times what round-to-round
# noise explains (about the 5% critical F for 3 instances and a few rounds).
INSTANCES_DIFFER = 4.0


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

    def keep(self, blocks: list[tuple[list[int], int, float | None]], load: RoundLoad) -> None:
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


class StopRule(Protocol):
    """Who may stop a key's timing between rounds (``decide.dominance.Dominance``): the key
    that beats it, or None. ``interim`` holds every key's figures so far."""

    def stops(self, key: str, interim: Mapping[str, _Track]) -> str | None: ...


def _stop_dominated(tracks: Mapping[str, _Track], dominance: StopRule, anchor: str | None) -> None:
    for key, track in tracks.items():
        if track.done or key == anchor:
            continue
        winner = dominance.stops(key, tracks)
        if winner is not None:
            track.done, track.done_reason, track.dominated_by = True, "dominated", winner


def _read_load(
    probe: LoadProbe, before: float, after: float, ref: ReferenceBaseline, s: HarnessSettings
) -> RoundLoad:
    other = probe.other_cores()
    reference = (before + after) / 2
    load = RoundLoad(
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
    dominance: StopRule | None = None,
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
                probe = noise.LoadProbe()
                probe.start()
                before = noise.reference_kernel_ms()
                blocks: dict[str, list[tuple[list[int], int, float | None]]] = {}
                for key in order:
                    blocks[key] = [_timed(fn, settings, energy_reader) for fn in instances[key]]
                load = _read_load(probe, before, noise.reference_kernel_ms(), reference, settings)
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
