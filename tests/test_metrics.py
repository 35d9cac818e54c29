from __future__ import annotations

import time

import pytest
import torch

from edge_opt.errors import MeasurementError
from edge_opt.metrics import (
    collect_metrics,
    energy_proxy_j,
    measure_latency,
    summarize_latencies,
    time_calls,
    wilson_interval,
)
from edge_opt.model import SmallCNN


def test_summary_statistics_of_known_samples() -> None:
    samples_ns = [1_000_000] * 90 + [5_000_000] * 10  # 90 calls of 1 ms, 10 of 5 ms
    s = summarize_latencies(samples_ns, batch_size=1, threads=1)
    assert s.n == 100
    assert s.mean_ms == pytest.approx(1.4)
    assert s.p50_ms == pytest.approx(1.0)
    assert s.p95_ms == pytest.approx(5.0)
    assert s.min_ms == 1.0
    assert s.max_ms == 5.0
    assert s.min_ms <= s.p50_ms <= s.p95_ms <= s.max_ms


def test_time_calls_counts_and_sees_a_known_sleep() -> None:
    samples = time_calls(lambda: time.sleep(0.002), warmup=1, repeats=5, trials=2)
    assert len(samples) == 10
    assert min(samples) >= 2_000_000  # a 2 ms sleep never takes less than 2 ms


def test_measure_latency_restores_threads_and_rejects_bad_counts() -> None:
    before = torch.get_num_threads()
    stats = measure_latency(
        SmallCNN(), torch.zeros(2, 1, 28, 28), warmup=1, repeats=5, trials=2, threads=1
    )
    assert torch.get_num_threads() == before
    assert (stats.n, stats.batch_size, stats.threads) == (10, 2, 1)
    with pytest.raises(MeasurementError, match="need repeats >= 1"):
        measure_latency(SmallCNN(), torch.zeros(1, 1, 28, 28), repeats=0)


def test_energy_proxy_formula() -> None:
    assert energy_proxy_j(latency_ms=2.0, power_watts=5.0) == pytest.approx(0.01)


def test_wilson_interval_contains_the_proportion() -> None:
    low, high = wilson_interval(90, 100)
    assert low < 0.9 < high
    assert wilson_interval(100, 100)[1] == 1.0


def test_collect_metrics_fields(trained_cnn, loaders) -> None:
    m = collect_metrics(
        trained_cnn,
        loaders.val,
        "cpu",
        power_watts=4.0,
        precision="fp32",
        benchmark_repeats=20,
        benchmark_warmup=2,
        benchmark_trials=2,
        throughput_repeats=3,
    )
    assert m.latency_samples == 40
    assert m.latency_batch_size == 1
    assert m.throughput_batch_size == 50
    assert 0 < m.latency_p50_ms <= m.latency_p95_ms
    assert m.energy_proxy_j == pytest.approx(m.latency_ms / 1000 * 4.0)
    assert m.memory_mb == pytest.approx(m.model_size_bytes / 2**20)
    assert m.accuracy_ci95_low <= m.accuracy <= m.accuracy_ci95_high
    assert m.eval_samples == 200
    assert "latency_ms_scaled" not in m.to_dict()  # no multiplier, no modelled column


def test_latency_multiplier_adds_columns_and_keeps_measured(trained_cnn, loaders) -> None:
    m = collect_metrics(
        trained_cnn,
        loaders.val,
        "cpu",
        5.0,
        "fp32",
        latency_multiplier=2.0,
        benchmark_repeats=10,
        benchmark_warmup=1,
        benchmark_trials=1,
        throughput_repeats=2,
    )
    row = m.to_dict()
    assert row["latency_ms_scaled"] == pytest.approx(2.0 * row["latency_ms"])
    assert row["energy_proxy_j"] == pytest.approx(row["latency_ms"] / 1000 * 5.0)  # measured-based
    assert row["energy_proxy_j_scaled"] == pytest.approx(2.0 * row["energy_proxy_j"])


def test_collect_metrics_rejects_other_devices(trained_cnn, loaders) -> None:
    with pytest.raises(MeasurementError, match="device: 'meta' is not supported"):
        collect_metrics(trained_cnn, loaders.val, "meta", 5.0, "fp32")
