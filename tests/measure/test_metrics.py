from __future__ import annotations

import pytest

from edge_opt.errors import MeasurementError
from edge_opt.measure.energy import energy_proxy_j
from edge_opt.measure.metrics import MetricsOptions, collect_metrics, first_inputs, wilson_interval


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
        options=MetricsOptions(warmup=2, trials=2, throughput_repeats=3),
    )
    assert m.latency_samples == m.latency_rounds * 20
    assert m.latency_rounds >= 2
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
        options=MetricsOptions(warmup=1, trials=1, throughput_repeats=2),
    )
    row = m.to_dict()
    assert row["latency_ms_scaled"] == pytest.approx(2.0 * row["latency_ms"])
    assert row["energy_proxy_j"] == pytest.approx(row["latency_ms"] / 1000 * 5.0)  # measured-based
    assert row["energy_proxy_j_scaled"] == pytest.approx(2.0 * row["energy_proxy_j"])


def test_collect_metrics_rejects_other_devices(trained_cnn, loaders) -> None:
    with pytest.raises(MeasurementError, match="device: 'meta' is not supported"):
        collect_metrics(trained_cnn, loaders.val, "meta", 5.0, "fp32")


def test_first_inputs_owns_its_storage(loaders) -> None:
    x = first_inputs(loaders.val, 3)
    assert x.shape == (3, 1, 28, 28)
    assert x.untyped_storage().nbytes() == 3 * 28 * 28 * 4  # not a view of the whole batch
