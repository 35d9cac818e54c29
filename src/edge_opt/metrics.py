"""Measuring one model: accuracy, per-call latency distribution, throughput, size, energy proxy.

Measurement rules (DESIGN.md): warm-up calls first, then every timed call is wrapped in
``time.perf_counter_ns`` under ``torch.inference_mode()`` with a fixed thread count; the
figures come from the distribution of per-call times (mean, std, p50, p95, n), never from a
mean of means. Batch-1 latency and batch-N throughput are separate figures. A modelled figure
(``latency_multiplier`` != 1) gets its own ``*_scaled`` field and never replaces a measured one.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.errors import MeasurementError

BYTES_PER_MB = 2**20  # "MB" in edge-opt means MiB: budgets, memory_mb and sizes use 2**20 bytes
INPUT_DTYPES = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "int8": torch.float32,
}


@dataclass(frozen=True)
class LatencyStats:
    """Distribution of per-call wall times, in milliseconds."""

    mean_ms: float
    std_ms: float
    p50_ms: float
    p95_ms: float
    min_ms: float
    max_ms: float
    n: int
    batch_size: int
    threads: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_latencies(
    samples_ns: list[int] | np.ndarray, batch_size: int, threads: int
) -> LatencyStats:
    """Statistics of per-call times given in nanoseconds (pure)."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise MeasurementError("no latency samples to summarise")
    return LatencyStats(
        mean_ms=float(ms.mean()),
        std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        p50_ms=float(np.percentile(ms, 50)),
        p95_ms=float(np.percentile(ms, 95)),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
        n=int(ms.size),
        batch_size=batch_size,
        threads=threads,
    )


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Fix torch's intra-op thread count for a block, then restore it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def time_calls(fn: Callable[[], object], warmup: int, repeats: int, trials: int = 1) -> list[int]:
    """Per-call wall times (ns): each trial runs ``warmup`` untimed then ``repeats`` timed calls."""
    samples: list[int] = []
    clock = time.perf_counter_ns
    with torch.inference_mode():
        for _ in range(trials):
            for _ in range(warmup):
                fn()
            for _ in range(repeats):
                start = clock()
                fn()
                samples.append(clock() - start)
    return samples


def measure_latency(
    model: nn.Module,
    example: torch.Tensor,
    warmup: int = 10,
    repeats: int = 100,
    trials: int = 1,
    threads: int = 1,
) -> LatencyStats:
    """Time ``model(example)`` per call with a fixed thread count."""
    if repeats < 1 or trials < 1 or warmup < 0:
        raise MeasurementError(
            f"measure_latency: need repeats >= 1, trials >= 1, warmup >= 0; got "
            f"{repeats}, {trials}, {warmup}"
        )
    model.eval()
    with torch_threads(threads):
        samples = time_calls(lambda: model(example), warmup, repeats, trials)
    return summarize_latencies(samples, batch_size=int(example.shape[0]), threads=threads)


@dataclass(frozen=True)
class AccuracyResult:
    correct: int
    total: int
    predictions: torch.Tensor  # (total,) int64, in loader order

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


def evaluate_accuracy(
    model: nn.Module, loader: DataLoader, input_dtype: torch.dtype = torch.float32
) -> AccuracyResult:
    """Top-1 accuracy over a loader, keeping the predictions (for agreement checks)."""
    model.eval()
    correct, total, preds = 0, 0, []
    with torch.inference_mode():
        for inputs, targets in loader:
            pred = model(inputs.to(input_dtype)).float().argmax(dim=1)
            preds.append(pred)
            correct += int((pred == targets).sum())
            total += int(targets.numel())
    if total == 0:
        raise MeasurementError("evaluation loader is empty; check the dataset split sizes")
    return AccuracyResult(correct, total, torch.cat(preds))


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (sound near 0 and 1)."""
    if trials == 0:
        return (float("nan"), float("nan"))
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return (low, high)


def serialized_size_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what would be deployed (int8 packed)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def energy_proxy_j(latency_ms: float, power_watts: float) -> float:
    """Modelled energy per call: latency_s x power_watts (not a measurement of power)."""
    return (latency_ms / 1000.0) * power_watts


def first_inputs(loader: DataLoader, count: int) -> torch.Tensor:
    """The first ``count`` inputs of a loader (across batches), as one tensor."""
    parts, have = [], 0
    for inputs, _ in loader:
        parts.append(inputs)
        have += inputs.shape[0]
        if have >= count:
            break
    if have < count:
        raise MeasurementError(f"loader holds {have} inputs, fewer than the {count} requested")
    return torch.cat(parts)[:count]


@dataclass(frozen=True)
class CandidateMetrics:
    """Everything measured (and the energy proxy modelled) for one model in one precision."""

    precision: str
    accuracy: float
    accuracy_ci95_low: float
    accuracy_ci95_high: float
    eval_samples: int
    latency_ms: float  # mean per call at latency_batch_size, measured
    latency_std_ms: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_min_ms: float
    latency_samples: int
    latency_batch_size: int
    throughput_sps: float  # samples/s at throughput_batch_size, measured
    throughput_batch_size: int
    batch_latency_ms: float  # mean per call at throughput_batch_size
    model_size_bytes: int
    memory_mb: float
    energy_proxy_j: float  # modelled: latency_ms/1000 x power_watts
    power_watts: float
    threads: int
    latency_multiplier: float
    top1_agreement: float | None = None
    latency_ms_scaled: float | None = None  # modelled: latency_ms x latency_multiplier
    latency_p95_ms_scaled: float | None = None
    energy_proxy_j_scaled: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat record; the ``*_scaled`` keys appear only when a multiplier other than 1 is set."""
        data = asdict(self)
        if self.latency_multiplier == 1.0:
            for key in ("latency_ms_scaled", "latency_p95_ms_scaled", "energy_proxy_j_scaled"):
                data.pop(key)
        return data


def collect_metrics(
    model: nn.Module,
    val_loader: DataLoader,
    device: str | torch.device,
    power_watts: float,
    precision: str,
    latency_multiplier: float = 1.0,
    benchmark_repeats: int = 100,
    *,
    benchmark_warmup: int = 10,
    benchmark_trials: int = 3,
    latency_batch_size: int = 1,
    throughput_repeats: int = 10,
    threads: int = 1,
    reference_predictions: torch.Tensor | None = None,
) -> CandidateMetrics:
    """Measure one model on ``val_loader``.

    Args:
        model: the model, already in ``precision``.
        val_loader: evaluation data; its first batch also feeds the timing calls.
        device: torch device; only CPU is supported.
        power_watts: power assumed by the energy proxy.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``; sets the input dtype.
        latency_multiplier: modelled slow-down of the target; != 1 adds ``*_scaled`` fields.
        benchmark_repeats: timed calls per trial.
        benchmark_warmup: untimed calls before each trial.
        benchmark_trials: trials; their per-call samples are pooled.
        latency_batch_size: batch of the latency calls (1 = streaming).
        throughput_repeats: timed calls at the loader's batch size for throughput.
        threads: torch intra-op threads during timing.
        reference_predictions: baseline predictions on the same loader, for top-1 agreement.

    Returns:
        A ``CandidateMetrics``.

    Raises:
        MeasurementError: empty loader, unknown precision, unsupported device.
    """
    if torch.device(device).type != "cpu":
        raise MeasurementError(f"device: {device!r} is not supported; edge-opt measures on cpu")
    if precision not in INPUT_DTYPES:
        raise MeasurementError(
            f"precision: {precision!r} is unknown; allowed: {', '.join(INPUT_DTYPES)}"
        )
    if latency_multiplier <= 0:
        raise MeasurementError(f"latency_multiplier: {latency_multiplier!r} must be > 0")
    dtype = INPUT_DTYPES[precision]
    model.eval()
    acc = evaluate_accuracy(model, val_loader, dtype)
    low, high = wilson_interval(acc.correct, acc.total)
    agreement = None
    if reference_predictions is not None:
        agreement = float((acc.predictions == reference_predictions).float().mean())

    latency_input = first_inputs(val_loader, latency_batch_size).to(dtype)
    lat = measure_latency(
        model, latency_input, benchmark_warmup, benchmark_repeats, benchmark_trials, threads
    )
    batch_input = next(iter(val_loader))[0].to(dtype)
    batch = measure_latency(
        model, batch_input, min(benchmark_warmup, 3), throughput_repeats, 1, threads
    )
    size = serialized_size_bytes(model)
    energy = energy_proxy_j(lat.mean_ms, power_watts)
    scaled = latency_multiplier != 1.0
    return CandidateMetrics(
        precision=precision,
        accuracy=acc.accuracy,
        accuracy_ci95_low=low,
        accuracy_ci95_high=high,
        eval_samples=acc.total,
        latency_ms=lat.mean_ms,
        latency_std_ms=lat.std_ms,
        latency_p50_ms=lat.p50_ms,
        latency_p95_ms=lat.p95_ms,
        latency_min_ms=lat.min_ms,
        latency_samples=lat.n,
        latency_batch_size=lat.batch_size,
        throughput_sps=batch.batch_size / (batch.mean_ms / 1000.0),
        throughput_batch_size=batch.batch_size,
        batch_latency_ms=batch.mean_ms,
        model_size_bytes=size,
        memory_mb=size / BYTES_PER_MB,
        energy_proxy_j=energy,
        power_watts=power_watts,
        threads=threads,
        latency_multiplier=latency_multiplier,
        top1_agreement=agreement,
        latency_ms_scaled=lat.mean_ms * latency_multiplier if scaled else None,
        latency_p95_ms_scaled=lat.p95_ms * latency_multiplier if scaled else None,
        energy_proxy_j_scaled=energy * latency_multiplier if scaled else None,
    )
