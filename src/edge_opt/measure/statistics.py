"""Statistics of per-call times: the latency distribution (``LatencyStats``), the p50's seeded
bootstrap CIs (plain and hierarchical over instances and rounds), paired speedups."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge_opt.errors import MeasurementError

NOISY_SHARE = 0.2  # a candidate is flagged noisy when more of its kept rounds were noisy
MEDIAN_SE = 1.2533  # sqrt(pi/2): a median's standard error over a mean's, for normal noise


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
