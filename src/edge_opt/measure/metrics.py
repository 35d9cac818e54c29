"""Measuring one model: accuracy, latency distribution, throughput, size, energy.

Every latency figure comes from ``edge_opt.measure.harness`` (warm-up until settled, per-call
``perf_counter_ns`` under ``torch.inference_mode()``, fixed threads, noisy-round retries).
Batch-1 latency and batch-N throughput are separate figures. A modelled figure
(``latency_multiplier`` != 1) gets its own ``*_scaled`` field and never replaces a measured one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.compress.precisions import PRECISIONS
from edge_opt.errors import MeasurementError
from edge_opt.measure.energy import RaplReader, energy_proxy_j
from edge_opt.measure.harness import HarnessSettings, measure_interleaved
from edge_opt.measure.process import torch_threads
from edge_opt.measure.statistics import LatencyStats
from edge_opt.runtimes.base import serialized_size_bytes
from edge_opt.runtimes.evaluation import EvaluationTwin

BYTES_PER_MB = 2**20  # "MB" in edge-opt means MiB: budgets, memory_mb and sizes use 2**20 bytes
# The dtype of each precision's inputs (an int8 model quantizes its float input itself).
INPUT_DTYPES = {
    name: getattr(torch, PRECISIONS.get(name).input_dtype) for name in PRECISIONS.names()
}


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
    """Top-1 accuracy over a loader, keeping the predictions (for agreement checks).

    Batches run side by side on every torch thread, a float model through its pooling view:
    the predictions are the model's own, bit for bit (``edge_opt.runtimes.evaluation``)."""
    model.eval()
    twin = EvaluationTwin(model)
    return evaluate_predict(
        lambda x: twin(x.to(input_dtype)), loader, workers=max(1, torch.get_num_threads())
    )


def evaluate_predict(
    predict: Callable[[torch.Tensor], torch.Tensor], loader: DataLoader, workers: int = 1
) -> AccuracyResult:
    """Top-1 accuracy of any ``predict(float batch) -> logits`` (a runtime), with predictions.

    ``workers`` > 1 runs that many batches at once on Python threads (``predict`` must be
    thread-safe), each on one torch thread: ``workers`` threads in all, not ``workers`` x the
    caller's (oversubscribed, the fp32 SmallCNN evaluated 1.4x slower). Each batch is the same
    batch, and these models' outputs do not depend on the thread count (checked bit for bit in
    tests/test_runtimes.py), so the predictions are the ones one worker gives.
    """

    def classify(inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():  # grad mode is per thread
            return predict(inputs).float().argmax(dim=1)

    correct, total, preds = 0, 0, []

    def count(pred: torch.Tensor, targets: torch.Tensor) -> None:
        nonlocal correct, total
        preds.append(pred)
        correct += int((pred == targets).sum())
        total += int(targets.numel())

    if workers <= 1:
        for inputs, targets in loader:
            count(classify(inputs), targets)
    else:  # at most 2 batches per worker in flight: memory stays bounded on large datasets
        with (
            torch_threads(1),
            ThreadPoolExecutor(workers, thread_name_prefix="edge-opt-eval") as pool,
        ):
            pending: deque[tuple[Future[torch.Tensor], torch.Tensor]] = deque()
            for inputs, targets in loader:
                pending.append((pool.submit(classify, inputs), targets))
                if len(pending) >= 2 * workers:
                    done, expected = pending.popleft()
                    count(done.result(), expected)
            while pending:
                done, expected = pending.popleft()
                count(done.result(), expected)
    if total == 0:
        raise MeasurementError(
            "evaluation loader: it yielded no batches (no samples); pass a loader over at least "
            "one sample (check the dataset split sizes, e.g. val_subset)"
        )
    return AccuracyResult(correct, total, torch.cat(preds))


def require_batches(loader: DataLoader, name: str) -> None:
    """Raise ``MeasurementError`` naming ``name`` when ``loader`` has no batches.

    A loader without ``len`` (an iterable dataset) passes; evaluation then finds out.
    """
    try:
        batches = len(loader)
    except TypeError:
        return
    if batches == 0:
        dataset = getattr(loader, "dataset", None)
        try:
            samples = f"{len(dataset)} samples" if dataset is not None else "no dataset"
        except TypeError:
            samples = "an unsized dataset"
        raise MeasurementError(
            f"{name}: the loader has no batches ({samples}); pass a DataLoader with at least "
            "one batch (e.g. a larger val_subset, or drop_last=False)"
        )


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
    return torch.cat(parts)[:count].clone()  # own storage: not a view of a whole batch


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
    latency_p90_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    latency_min_ms: float
    latency_iqr_ms: float
    latency_p50_ci95_low_ms: float
    latency_p50_ci95_high_ms: float
    latency_samples: int
    latency_rounds: int
    latency_batch_size: int
    latency_stop_reason: str
    latency_dominated_by: str | None  # stop reason dominated: the faster candidate
    latency_instances: int  # independently built instances timed and pooled
    latency_p50_precision: float | None  # achieved 95% CI half-width / p50
    page_faults_per_call: float | None
    noisy: bool
    noisy_retries: int
    noisy_rounds: int
    noisy_signal: str  # which load signal made kept rounds noisy, and by how much
    other_cpu_cores: float | None
    host_slowdown: float | None
    host_reference_ms: float | None
    host_drift: float | None  # the reference kernel's typical time, end vs start (> 0: slower)
    throughput_sps: float  # samples/s at throughput_batch_size, measured
    throughput_batch_size: int
    batch_latency_ms: float  # mean per call at throughput_batch_size
    batch_latency_p50_ms: float
    model_size_bytes: int
    memory_mb: float
    energy_proxy_j: float  # modelled: latency_ms/1000 x power_watts
    power_watts: float
    energy_measured_j: float | None  # RAPL, per call, when the host exposes it
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


def assemble_metrics(
    precision: str,
    accuracy: AccuracyResult,
    latency: LatencyStats,
    throughput: LatencyStats,
    model_size_bytes: int,
    power_watts: float,
    latency_multiplier: float = 1.0,
    reference_predictions: torch.Tensor | None = None,
) -> CandidateMetrics:
    """Combine measured parts into one ``CandidateMetrics`` (pure)."""
    low, high = wilson_interval(accuracy.correct, accuracy.total)
    agreement = None
    if reference_predictions is not None:
        agreement = float((accuracy.predictions == reference_predictions).float().mean())
    energy = energy_proxy_j(latency.mean_ms, power_watts)
    scaled = latency_multiplier != 1.0
    return CandidateMetrics(
        precision=precision,
        accuracy=accuracy.accuracy,
        accuracy_ci95_low=low,
        accuracy_ci95_high=high,
        eval_samples=accuracy.total,
        latency_ms=latency.mean_ms,
        latency_std_ms=latency.std_ms,
        latency_p50_ms=latency.p50_ms,
        latency_p90_ms=latency.p90_ms,
        latency_p95_ms=latency.p95_ms,
        latency_p99_ms=latency.p99_ms,
        latency_min_ms=latency.min_ms,
        latency_iqr_ms=latency.iqr_ms,
        latency_p50_ci95_low_ms=latency.p50_ci95_low_ms,
        latency_p50_ci95_high_ms=latency.p50_ci95_high_ms,
        latency_samples=latency.n,
        latency_rounds=latency.rounds,
        latency_batch_size=latency.batch_size,
        latency_stop_reason=latency.stop_reason,
        latency_dominated_by=latency.dominated_by,
        latency_instances=latency.instances,
        latency_p50_precision=latency.p50_precision,
        page_faults_per_call=latency.page_faults_per_call,
        noisy=latency.noisy,
        noisy_retries=latency.noisy_retries,
        noisy_rounds=latency.noisy_rounds,
        noisy_signal=latency.noisy_signal,
        other_cpu_cores=latency.other_cpu_cores,
        host_slowdown=latency.host_slowdown,
        host_reference_ms=latency.host_reference_ms,
        host_drift=latency.host_drift,
        throughput_sps=throughput.batch_size / (throughput.mean_ms / 1000.0),
        throughput_batch_size=throughput.batch_size,
        batch_latency_ms=throughput.mean_ms,
        batch_latency_p50_ms=throughput.p50_ms,
        model_size_bytes=model_size_bytes,
        memory_mb=model_size_bytes / BYTES_PER_MB,
        energy_proxy_j=energy,
        power_watts=power_watts,
        energy_measured_j=latency.energy_per_call_j,
        threads=latency.threads,
        latency_multiplier=latency_multiplier,
        top1_agreement=agreement,
        latency_ms_scaled=latency.mean_ms * latency_multiplier if scaled else None,
        latency_p95_ms_scaled=latency.p95_ms * latency_multiplier if scaled else None,
        energy_proxy_j_scaled=energy * latency_multiplier if scaled else None,
    )


THROUGHPUT_ROUNDS = 3  # throughput is reported (the mean over its calls), it decides nothing


def throughput_settings(settings: HarnessSettings, throughput_repeats: int) -> HarnessSettings:
    """The harness settings for batch-N throughput: ``throughput_repeats`` calls per round in
    ``THROUGHPUT_ROUNDS`` interleaved rounds (fewer if ``benchmark_trials`` is smaller), after a
    short warm-up. The figure is the mean over those calls; no precision target, since no
    decision rests on it (more rounds here cost about 1 s each on the default run)."""
    from dataclasses import replace

    rounds = min(settings.min_rounds, THROUGHPUT_ROUNDS)
    return replace(
        settings,
        calls_per_round=throughput_repeats,
        # A batch-N call is steady from its second call on (its buffers are allocated): blocks
        # of one call, at most 4, so that a jittery int8 kernel does not warm up for 20.
        warmup_min=min(settings.warmup_min, 1),
        warmup_max_blocks=min(settings.warmup_max_blocks, 4),
        min_rounds=rounds,
        max_rounds=rounds,
    )


@dataclass(frozen=True)
class MetricsOptions:
    """How ``collect_metrics`` times, beyond its documented arguments (config keys of the same
    names); ``harness`` overrides ``warmup``, ``trials`` and ``threads``."""

    warmup: int = 10
    trials: int = 3
    latency_batch_size: int = 1
    throughput_repeats: int = 10
    threads: int = 1
    harness: HarnessSettings | None = None

    def settings(self, repeats: int) -> HarnessSettings:
        if self.harness is not None:
            return self.harness
        return HarnessSettings.from_counts(self.threads, self.warmup, repeats, self.trials)


def collect_metrics(
    model: nn.Module,
    val_loader: DataLoader,
    device: str | torch.device,
    power_watts: float,
    precision: str,
    latency_multiplier: float = 1.0,
    benchmark_repeats: int = 100,
    *,
    options: MetricsOptions | None = None,
    reference_predictions: torch.Tensor | None = None,
) -> CandidateMetrics:
    """Measure one model on ``val_loader``: accuracy, latency distribution at the latency
    batch, throughput at the loader's batch, size, energy proxy.

    Args:
        model: the model, already in ``precision``.
        val_loader: evaluation data; its first batch also feeds the timing calls.
        device: torch device; only CPU is supported.
        power_watts: power assumed by the energy proxy.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``; sets the input dtype.
        latency_multiplier: modelled slow-down of the target; != 1 adds ``*_scaled`` fields.
        benchmark_repeats: timed calls per round.
        options: warm-up, rounds, batches, threads, or the whole harness protocol.
        reference_predictions: baseline predictions on the same loader, for top-1 agreement.

    Raises:
        MeasurementError: ``val_loader`` has no batches, unknown precision, unsupported
            device. It is a ``ValueError`` too.

    Example:
        >>> m = collect_metrics(model, val_loader, "cpu", 5.0, "fp32")  # doctest: +SKIP
        >>> m.latency_p50_ms <= m.latency_p95_ms  # doctest: +SKIP
        True
    """
    require_batches(val_loader, "val_loader")
    if torch.device(device).type != "cpu":
        raise MeasurementError(f"device: {device!r} is not supported; edge-opt measures on cpu")
    if precision not in INPUT_DTYPES:
        raise MeasurementError(
            f"precision: {precision!r} is unknown; allowed: {', '.join(INPUT_DTYPES)}"
        )
    if latency_multiplier <= 0:
        raise MeasurementError(f"latency_multiplier: {latency_multiplier!r} must be > 0")
    options = options or MetricsOptions()
    settings = options.settings(benchmark_repeats)
    dtype = INPUT_DTYPES[precision]
    model.eval()
    acc = evaluate_accuracy(model, val_loader, dtype)
    latency_input = first_inputs(val_loader, options.latency_batch_size).to(dtype)
    batch_input = next(iter(val_loader))[0].to(dtype)
    rapl = RaplReader()
    lat = measure_interleaved(
        {"m": lambda: model(latency_input)},
        settings,
        {"m": options.latency_batch_size},
        energy_reader=rapl if rapl.available else None,
    )["m"]
    batch = measure_interleaved(
        {"m": lambda: model(batch_input)},
        throughput_settings(settings, options.throughput_repeats),
        {"m": int(batch_input.shape[0])},
    )["m"]
    size = serialized_size_bytes(model)
    return assemble_metrics(
        precision, acc, lat, batch, size, power_watts, latency_multiplier, reference_predictions
    )
