"""Hardware profile of one model: operator profile, totals, precision memory, edge constraints.

``build_hardware_profile_table`` returns four sections:
- ``operator_profile``: one entry per operator (``operator``, ``latency_ms``, ``memory_kb``,
  ``calls``), per forward pass, from the PyTorch profiler over repeated forwards;
- ``totals``: ``latency_ms`` and ``memory_kb`` summed over operators,
  ``estimated_bandwidth_mb_s`` (memory_kb / latency), ``stream_utilization`` (the share of the
  stream interval spent computing);
- ``precision_tradeoffs``: ``fp32_memory_kb``, ``fp16_memory_kb`` (50%), ``int8_memory_kb``
  (25%) of the parameters, and a ``note``;
- ``edge_constraints``: ``cache_sensitivity`` and ``bottleneck``, sentences derived from the
  numbers (working set vs the target's caches; arithmetic intensity vs its roofline knee).

The profiler adds overhead (1.7-2.6x wall time on this host): its latencies are for ranking
operators, not a replacement for the harness's measured latency.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from edge_opt.analysis.device_profiles import HardwareProfile
from edge_opt.errors import EdgeOptError
from edge_opt.measure.process import torch_threads

OPERATOR_COLUMNS = ["operator", "latency_ms", "memory_kb", "calls"]


# ------------------------------------------------------------------------------- helpers
def estimate_batch_memory_mb(
    batch_size: int, feature_count: int, bytes_per_feature: int = 8
) -> float:
    """Memory of one batch: batch x features x bytes per feature, in MB (2**20 bytes)."""
    if batch_size < 0 or feature_count < 0 or bytes_per_feature < 0:
        raise ValueError("batch_size, feature_count and bytes_per_feature must be >= 0")
    return batch_size * feature_count * bytes_per_feature / 2**20


def auto_adjust_batch_size(
    batch_size: int,
    feature_count: int,
    memory_limit_mb: float,
    bytes_per_feature: int = 8,
) -> int:
    """Halve ``batch_size`` until a batch fits ``memory_limit_mb``.

    For CNN inputs, ``feature_count`` is C*H*W plus the activations the model needs per
    sample (``cnn_feature_count``).

    Raises:
        EdgeOptError: even a batch of 1 does not fit (the message gives its size).
    """
    if batch_size < 1:
        raise EdgeOptError(f"batch_size: {batch_size} must be >= 1")
    size = batch_size
    while size >= 1:
        if estimate_batch_memory_mb(size, feature_count, bytes_per_feature) <= memory_limit_mb:
            return size
        if size == 1:
            break
        size //= 2
    one = estimate_batch_memory_mb(1, feature_count, bytes_per_feature)
    raise EdgeOptError(
        f"memory_limit_mb: {memory_limit_mb:g} MB is below one sample's {one:.4g} MB "
        f"({feature_count} features x {bytes_per_feature} B); raise the limit or shrink the model"
    )


def compute_utilization(busy: float, available: float) -> float:
    """busy / available, clamped to [0, 1] (0 when nothing is available)."""
    if available <= 0:
        return 0.0
    return min(1.0, max(0.0, busy / available))


def cnn_feature_count(
    peak_activation_bytes: int, input_shape: tuple[int, int, int], bytes_per_element: int = 4
) -> int:
    """Per-sample features of a CNN: C*H*W of the input plus its peak live activations."""
    c, h, w = input_shape
    return c * h * w + peak_activation_bytes // bytes_per_element


# ------------------------------------------------------------------------ operator profile
def profile_operators(
    model: nn.Module, example: torch.Tensor, repeats: int = 20, threads: int = 1
) -> pd.DataFrame:
    """Self CPU time and allocated memory per operator, per forward, over ``repeats`` forwards."""
    from torch.profiler import ProfilerActivity, profile

    model.eval()
    with torch_threads(threads), torch.inference_mode():
        for _ in range(3):
            model(example)  # warm-up outside the profile
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            for _ in range(repeats):
                model(example)
    rows = []
    for event in prof.key_averages():
        if event.key.startswith("ProfilerStep") or event.count == 0:
            continue
        rows.append(
            {
                "operator": event.key,
                "latency_ms": event.self_cpu_time_total / 1000.0 / repeats,
                "memory_kb": max(event.self_cpu_memory_usage, 0) / 1024.0 / repeats,
                "calls": event.count / repeats,
            }
        )
    frame = pd.DataFrame(rows, columns=OPERATOR_COLUMNS)
    frame = frame[frame["latency_ms"] > 0]
    return frame.sort_values("latency_ms", ascending=False).reset_index(drop=True)


# ------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class HardwareProfileTable:
    """The four sections of a hardware profile, and what was profiled on which device."""

    subject: str
    device: str
    operator_profile: list[dict[str, Any]]
    totals: dict[str, Any]
    precision_tradeoffs: dict[str, Any]
    edge_constraints: dict[str, str]

    def operator_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.operator_profile, columns=OPERATOR_COLUMNS)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kib(value: float) -> str:
    return f"{value:,.0f} KiB" if value >= 10 else f"{value:.1f} KiB"


def cache_sensitivity(working_set_kib: float, device: HardwareProfile) -> str:
    levels = [
        ("L1d", device.l1d_kib.value),
        ("L2", device.l2_kib.value),
        ("L3", device.l3_kib.value),
    ]
    known = [(name, size) for name, size in levels if size > 0]
    if not known:
        return f"working set {_kib(working_set_kib)}; {device.name}'s cache sizes are unknown"
    for name, size in known:
        if working_set_kib <= size:
            return (
                f"working set {_kib(working_set_kib)} (weights + peak live activations) "
                f"fits {device.name}'s {name} ({_kib(size)}): cache-resident, latency "
                "is set by compute and per-operator overhead, not DRAM"
            )
    last, size = known[-1]
    return (
        f"working set {_kib(working_set_kib)} exceeds {device.name}'s {last} "
        f"({_kib(size)}): every inference streams from DRAM, so bandwidth matters"
    )


def bottleneck(macs: float, traffic_bytes: float, dtype: str, device: HardwareProfile) -> str:
    intensity = macs / max(traffic_bytes, 1.0)
    knee = device.knee_macs_per_byte(dtype)
    regime = "memory-bound" if intensity < knee else "compute-bound"
    return (
        f"arithmetic intensity {intensity:.2f} MAC/byte vs {device.name}'s {dtype} roofline "
        f"knee {knee:.2f} MAC/byte ({device.peak(dtype):.4g} GMAC/s over "
        f"{device.memory_bandwidth_gbps.value:.4g} GB/s): {regime}"
    )


def build_hardware_profile_table(
    model: nn.Module,
    example: torch.Tensor,
    device: HardwareProfile,
    layerwise: pd.DataFrame,
    peak_activation_bytes: int,
    dtype: str = "fp32",
    stream_interval_ms: float | None = None,
    repeats: int = 20,
    threads: int = 1,
    subject: str = "",
) -> HardwareProfileTable:
    """Profile ``model(example)`` and derive the four sections.

    Args:
        model: the module to profile (eager).
        example: one input batch (the latency batch).
        device: the target device profile (caches and roofline knee for the constraints).
        layerwise: ``estimate_layerwise_stats`` of the model (MACs and bytes).
        peak_activation_bytes: peak live activations (``edge_opt.measure.memory``).
        dtype: precision of the model, for the knee and bytes.
        stream_interval_ms: time between stream inputs; None leaves utilisation unset.
        repeats: profiled forwards.
        threads: torch threads while profiling.
        subject: a label (candidate id).
    """
    operators = profile_operators(copy.deepcopy(model), example, repeats, threads)
    latency_ms = float(operators["latency_ms"].sum())
    memory_kb = float(operators["memory_kb"].sum())
    totals = {
        "latency_ms": latency_ms,
        "memory_kb": memory_kb,
        "estimated_bandwidth_mb_s": (memory_kb / 1024.0) / max(latency_ms / 1000.0, 1e-9),
        "stream_interval_ms": stream_interval_ms,
        "stream_utilization": None
        if stream_interval_ms is None
        else compute_utilization(latency_ms, stream_interval_ms),
        "profiled_forwards": repeats,
        "threads": threads,
    }
    fp32_kb = sum(p.numel() for p in model.parameters()) * 4 / 1024.0
    if fp32_kb == 0:  # a converted int8 model keeps packed weights outside parameters()
        fp32_kb = float(layerwise["parameter_bytes"].sum()) / 1024.0
    precision = {
        "fp32_memory_kb": fp32_kb,
        "fp16_memory_kb": fp32_kb * 0.5,
        "int8_memory_kb": fp32_kb * 0.25,
        "note": "parameter memory only; latency effects depend on the deployment (kernels, "
        "runtime, CPU features): see the measured sweep, not this table",
    }
    weights_kib = float(layerwise["parameter_bytes"].sum()) / 1024.0
    traffic = float(layerwise["parameter_bytes"].sum() + layerwise["activation_bytes"].sum())
    constraints = {
        "cache_sensitivity": cache_sensitivity(
            weights_kib + peak_activation_bytes / 1024.0, device
        ),
        "bottleneck": bottleneck(float(layerwise["macs"].sum()), traffic, dtype, device),
    }
    return HardwareProfileTable(
        subject, device.name, operators.to_dict("records"), totals, precision, constraints
    )


# -------------------------------------------------------------------------------- roofline
def roofline_points(layerwise: pd.DataFrame, device: HardwareProfile, dtype: str) -> pd.DataFrame:
    """Per conv/linear layer: arithmetic intensity, attainable GMAC/s on the device, regime."""
    rows = layerwise[layerwise["macs"] > 0].copy()
    traffic = (rows["parameter_bytes"] + rows["activation_bytes"]).clip(lower=1)
    rows["intensity_macs_per_byte"] = rows["macs"] / traffic
    peak, bandwidth = device.peak(dtype), device.memory_bandwidth_gbps.value
    rows["attainable_gmacs"] = (rows["intensity_macs_per_byte"] * bandwidth).clip(upper=peak)
    knee = device.knee_macs_per_byte(dtype)
    rows["knee_macs_per_byte"] = knee
    rows["regime"] = [
        "memory-bound" if i < knee else "compute-bound" for i in rows["intensity_macs_per_byte"]
    ]
    return rows[
        [
            "layer",
            "kind",
            "macs",
            "intensity_macs_per_byte",
            "attainable_gmacs",
            "knee_macs_per_byte",
            "regime",
        ]
    ].reset_index(drop=True)
