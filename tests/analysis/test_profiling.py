"""Hardware profile: helpers, the four sections, device profiles, roofline, projection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from edge_opt.analysis.device_profiles import DEVICES, SOURCES, Figure
from edge_opt.analysis.devices import get_device_profile, measure_host_profile
from edge_opt.analysis.profiling import (
    auto_adjust_batch_size,
    build_hardware_profile_table,
    cnn_feature_count,
    compute_utilization,
    estimate_batch_memory_mb,
    roofline_points,
)
from edge_opt.analysis.projection import fit_projection, validate_projection
from edge_opt.errors import EdgeOptError
from edge_opt.measure.memory import peak_activation_bytes
from edge_opt.models.layers import estimate_layerwise_stats
from edge_opt.models.zoo import SmallCNN
from edge_opt.reports.hardware_files import write_hardware_profile_artifacts

PI = get_device_profile("raspberry-pi-4")


def test_batch_memory_and_halving_search() -> None:
    assert estimate_batch_memory_mb(4, 2**20, bytes_per_feature=1) == 4.0
    # 64 x 1 MiB x 8 B = 512 MiB; halving: 32 (256), 16 (128), 8 (64 MiB) fits 100 MiB.
    assert auto_adjust_batch_size(64, 2**20, memory_limit_mb=100) == 8
    assert auto_adjust_batch_size(64, 2**20, memory_limit_mb=1024) == 64
    assert auto_adjust_batch_size(5, 2**20, memory_limit_mb=8) == 1
    with pytest.raises(EdgeOptError, match=r"memory_limit_mb: 1 MB is below one sample's 8 MB"):
        auto_adjust_batch_size(64, 2**20, memory_limit_mb=1)


def test_utilisation_clamps() -> None:
    assert compute_utilization(5, 10) == 0.5
    assert compute_utilization(20, 10) == 1.0
    assert compute_utilization(-1, 10) == 0.0
    assert compute_utilization(1, 0) == 0.0


def test_cnn_feature_count_adds_activations() -> None:
    assert cnn_feature_count(100_352, (1, 28, 28)) == 784 + 100_352 // 4


@pytest.fixture(scope="module")
def smallcnn_profile():
    model = SmallCNN().eval()
    example = torch.zeros(1, 1, 28, 28)
    layers = estimate_layerwise_stats(model, 1)
    peak = peak_activation_bytes(model, example).peak_bytes
    return build_hardware_profile_table(
        model, example, PI, layers, peak, "fp32", stream_interval_ms=10.0, repeats=5, subject="base"
    )


def test_profile_lists_conv_and_linear_operators(smallcnn_profile) -> None:
    operators = set(smallcnn_profile.operator_frame()["operator"])
    assert {"aten::conv2d", "aten::linear"} <= operators
    assert (smallcnn_profile.operator_frame()["calls"] > 0).all()


def test_totals_equal_operator_sums(smallcnn_profile) -> None:
    ops, totals = smallcnn_profile.operator_frame(), smallcnn_profile.totals
    assert totals["latency_ms"] == pytest.approx(ops["latency_ms"].sum())
    assert totals["memory_kb"] == pytest.approx(ops["memory_kb"].sum())
    assert totals["estimated_bandwidth_mb_s"] == pytest.approx(
        totals["memory_kb"] / 1024 / (totals["latency_ms"] / 1000)
    )
    assert totals["stream_utilization"] == pytest.approx(
        compute_utilization(totals["latency_ms"], 10.0)
    )


def test_precision_memory_is_half_and_quarter(smallcnn_profile) -> None:
    p = smallcnn_profile.precision_tradeoffs
    assert p["fp32_memory_kb"] == pytest.approx(20_490 * 4 / 1024)
    assert p["fp16_memory_kb"] == pytest.approx(0.5 * p["fp32_memory_kb"])
    assert p["int8_memory_kb"] == pytest.approx(0.25 * p["fp32_memory_kb"])
    assert "depend on the deployment" in p["note"]


def test_edge_constraints_are_derived_from_the_numbers(smallcnn_profile) -> None:
    c = smallcnn_profile.edge_constraints
    # weights 80 KiB (fp32) + 98 KiB peak activations = 178 KiB: past the Pi's 32 KiB L1d,
    # within its 1 MiB L2.
    assert c["cache_sensitivity"].startswith("working set 178 KiB")
    assert "fits raspberry-pi-4's L2 (1,024 KiB)" in c["cache_sensitivity"]
    assert "knee 5.58 MAC/byte" in c["bottleneck"]  # 24 GMAC/s / 4.3 GB/s
    assert c["bottleneck"].endswith("memory-bound")


def test_artifacts(smallcnn_profile, tmp_path) -> None:
    paths = write_hardware_profile_artifacts(smallcnn_profile, tmp_path)
    assert {p.name for p in paths} == {
        "operator_profile.csv",
        "hardware_totals.csv",
        "hardware_profile.json",
    }
    assert list(pd.read_csv(tmp_path / "operator_profile.csv").columns) == [
        "operator",
        "latency_ms",
        "memory_kb",
        "calls",
    ]


def test_device_profiles_carry_sources() -> None:
    assert set(DEVICES.names()) >= {"raspberry-pi-4", "jetson-nano", "desktop-ddr4", "host"}
    assert PI.memory_bandwidth_gbps == Figure(4.3, "datasheet", "as the specification gives")
    assert get_device_profile("jetson-nano").memory_bandwidth_gbps.value == 25.6
    assert get_device_profile("desktop-ddr4").memory_bandwidth_gbps.value == 50.0
    for name in ("raspberry-pi-4", "jetson-nano", "desktop-ddr4"):
        profile = get_device_profile(name)
        assert all(f.source in SOURCES for f in profile.peak_gmacs.values())
    # A Cortex-A72 (ARMv8.0) has no fp16/bf16 arithmetic and no int8 dot product: each runs at
    # most at the fp32 rate, and each figure says where that comes from.
    for dtype in ("fp16", "bf16", "int8"):
        figure = PI.peak_gmacs[dtype]
        assert PI.known(dtype)
        assert figure.value == PI.peak_gmacs["fp32"].value
        assert "Armv8" in figure.note
    assert PI.peak_gmacs["fp16"].source == "datasheet"
    assert PI.peak_gmacs["int8"].source == "assumed"  # derived from public kernels, cited
    assert "vmlal_lane_s16" in PI.peak_gmacs["int8"].note
    assert PI.known("fp32")
    assert PI.peak_gmacs["fp32"].source == "datasheet"
    assert PI.with_bandwidth(9.0).memory_bandwidth_gbps.source == "assumed"
    with pytest.raises(ValueError, match="source 'guess'"):
        Figure(1.0, "guess")


def test_host_profile_is_measured() -> None:
    host = measure_host_profile(threads=1)
    assert host.memory_bandwidth_gbps.source == "measured"
    assert host.memory_bandwidth_gbps.value > 0.1
    assert host.peak_gmacs["fp32"].source == "measured"
    assert host.peak_gmacs["fp32"].value > 0.1


def test_roofline_regimes() -> None:
    layers = estimate_layerwise_stats(SmallCNN(), 1)
    points = roofline_points(layers, PI, "fp32").set_index("layer")
    assert set(points.index) == {"conv1", "conv2", "classifier"}
    # classifier: 15,680 MACs over 62,800 bytes = 0.25 MAC/B, far below the knee
    assert points.loc["classifier", "regime"] == "memory-bound"
    assert points.loc["classifier", "attainable_gmacs"] == pytest.approx(
        15_680 / (62_760 + 40) * 4.3
    )
    assert points.loc["conv2", "regime"] == "compute-bound"  # 903,168 MACs / 43,648 B = 20.7


def test_projection_fit_recovers_a_known_law() -> None:
    rng = np.random.default_rng(0)
    roof, ops = rng.uniform(0.01, 1.0, 30), rng.integers(5, 40, 30)
    measured = 2.5 * roof + 0.01 * ops
    model = fit_projection(roof, ops, measured)
    assert model.alpha == pytest.approx(2.5)
    assert model.beta == pytest.approx(0.01)
    frame = pd.DataFrame(
        {
            "candidate_id": [f"c{i}" for i in range(30)],
            "runtime": "eager",
            "precision": "fp32",
            "roofline_ms_host": roof,
            "operators": ops,
            "latency_p50_ms": measured,
        }
    )
    validation = validate_projection(frame)
    assert validation.candidates == 30
    assert validation.within_10pct == 1.0
    assert validation.median_abs_error_pct < 1e-6


def test_projection_falls_with_macs_and_skips_unknown_precisions() -> None:
    """The Pi projection of a shrinking model shrinks (an overhead-only host fit used to give
    every pruning level one figure), and a precision whose rate is unknown is not projected."""
    from edge_opt.analysis.devices import get_device_profile
    from edge_opt.analysis.projection import project_latencies

    host = get_device_profile("desktop-ddr4")
    layers, rows = {}, []
    for level, scale in ((0.0, 1.0), (0.5, 0.5), (0.7, 0.3)):
        for precision in ("fp32", "int8", "fp16"):
            cid = f"p{int(level * 100):02d}-{precision}-eager"
            layers[cid] = pd.DataFrame(
                {
                    "macs": [900_000 * scale, 400_000 * scale],
                    "parameter_bytes": [40_000 * scale, 20_000 * scale],
                    "activation_bytes": [30_000 * scale, 10_000 * scale],
                }
            )
            # On the host these tiny nets are overhead-bound: the same latency at every level.
            rows.append(
                {
                    "candidate_id": cid,
                    "runtime": "eager",
                    "precision": precision,
                    "roofline_ms_host": 0.001 * scale,
                    "operators": 8,
                    "latency_p50_ms": 0.05,
                }
            )
    frame = pd.DataFrame(rows)
    from dataclasses import replace

    from edge_opt.analysis.device_profiles import unknown

    peaks = {**PI.peak_gmacs, "int8": unknown("no source"), "fp16": unknown("no source")}
    projected = project_latencies(frame, host, replace(PI, peak_gmacs=peaks), layers)
    by_id = dict(zip(frame["candidate_id"], projected, strict=True))
    fp32 = [by_id["p00-fp32-eager"], by_id["p50-fp32-eager"], by_id["p70-fp32-eager"]]
    assert fp32[0] > fp32[1] > fp32[2] > 0
    assert all(
        np.isnan(by_id[f"p{lv}-{p}-eager"]) for lv in ("00", "50", "70") for p in ("int8", "fp16")
    )


def test_projection_fit_never_goes_negative() -> None:
    model = fit_projection(
        np.array([1.0, 2.0, 3.0]), np.array([10, 5, 1]), np.array([1.0, 2.0, 3.0])
    )
    assert model.alpha >= 0
    assert model.beta >= 0


def test_a_host_profile_says_when_and_under_what_load_it_was_measured() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from edge_opt.analysis.device_profiles import DEVICES
    from edge_opt.analysis.devices import stale_reason

    pi = DEVICES.get("raspberry-pi-4")
    now = datetime(2026, 11, 22, tzinfo=UTC)
    fresh = {"measured_at": (now - timedelta(days=1)).isoformat(), "other_cpu_cores": 0.1}
    assert stale_reason(replace(pi, measured=fresh), now) is None
    old = {**fresh, "measured_at": (now - timedelta(days=9)).isoformat()}
    assert stale_reason(replace(pi, measured=old), now) == "it is 9 days old (limit 7)"
    loaded = {**fresh, "other_cpu_cores": 1.2}
    assert stale_reason(replace(pi, measured=loaded), now) == (
        "it was measured under load (other processes used 1.20 cores)"
    )
    assert stale_reason(pi, now) == "it does not say when it was measured"


def test_a_stale_cached_host_profile_is_measured_again(tmp_path, monkeypatch) -> None:
    import json

    from edge_opt.analysis import devices

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(devices.LoadProbe, "other_cores", lambda self: 0.0)  # a quiet machine
    calls = []
    real = devices.measure_host_profile

    def counting(threads: int = 1, power_watts: float = 5.0):
        calls.append(threads)
        return real(threads, power_watts)

    monkeypatch.setattr(devices, "measure_host_profile", counting)
    first = devices.host_profile(1)
    assert first.measured["measured_at"]
    assert len(calls) == 1
    devices.host_profile(1)
    assert len(calls) == 1  # cached and fresh: reused
    path = devices._cache_path(1)
    data = json.loads(path.read_text())
    data["measured"]["other_cpu_cores"] = 1.5  # as if taken while the machine was busy
    path.write_text(json.dumps(data))
    devices.host_profile(1)
    assert len(calls) == 2
    devices.host_profile(1, refresh=True)
    assert len(calls) == 3


def test_a_dtype_the_cpus_kernels_refuse_is_assumed_at_the_fp32_rate() -> None:
    # oneDNN on an Armv8.0 core has no bf16 matmul: the host profile must not stop the run.
    from edge_opt.analysis.device_profiles import fig
    from edge_opt.analysis.devices import _dtype_rate

    fp32 = fig(40.0, "measured", "512x512 matmul, 1 thread(s)")
    a, b = torch.ones(4, 3), torch.ones(4, 3)  # a real kernel refusal (shapes that cannot mm)
    refused = _dtype_rate(lambda: torch.mm(a, b), 48.0, 0.01, "bf16", fp32)
    assert (refused.value, refused.source) == (40.0, "assumed")
    assert refused.note.startswith("bf16 matmul failed here (")
    measured = _dtype_rate(lambda: torch.mm(a, b.T), 48.0, 0.01, "bf16", fp32)
    assert measured.source == "measured"
