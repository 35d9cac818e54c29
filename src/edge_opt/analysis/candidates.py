"""Per-run hardware analysis the pipeline orchestrates: layer tables and bandwidth summaries
per candidate, operator profiles, and the latency projection with its validation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd
import torch
from torch import nn

from edge_opt.analysis.device_profiles import HardwareProfile
from edge_opt.analysis.hardware import summarize_hardware
from edge_opt.analysis.profiling import build_hardware_profile_table
from edge_opt.analysis.projection import (
    operator_count,
    project_latencies,
    roofline_time_ms,
    validate_projection,
)
from edge_opt.candidates.columns import C
from edge_opt.candidates.record import CandidateResult, Projection, records_frame
from edge_opt.compress.precisions import BYTES_PER_ELEMENT
from edge_opt.config.schema import ExperimentConfig
from edge_opt.models.layers import LAYER_COLUMNS, estimate_layerwise_stats


@dataclass(frozen=True)
class HardwareAnalysis:
    """Layer table and bandwidth summary of one candidate at the latency batch."""

    candidate_id: str
    precision: str
    batch_size: int
    latency_ms: float
    layerwise: list[dict[str, Any]]
    summary: dict[str, Any]

    def layerwise_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.layerwise, columns=LAYER_COLUMNS)


def analyse_candidate(
    model: nn.Module,
    row: dict[str, Any],
    cfg: ExperimentConfig,
    input_shape: tuple[int, int, int],
    bandwidth_gbps: float,
    target: HardwareProfile,
) -> HardwareAnalysis:
    layers = estimate_layerwise_stats(
        model,
        cfg.latency_batch_size,
        input_shape,
        bytes_per_element=BYTES_PER_ELEMENT[row[C.precision]],
    )
    summary = summarize_hardware(layers, row[C.latency_ms], bandwidth_gbps, cfg.peak_compute_gmacs)
    knee = target.knee_macs_per_byte(row[C.precision])
    summary["target_device"] = target.name
    summary["target_knee_macs_per_byte"] = knee
    summary["target_bound_regime"] = (
        "memory-bound" if summary["arithmetic_intensity_macs_per_byte"] < knee else "compute-bound"
    )
    return HardwareAnalysis(
        row[C.candidate_id],
        row[C.precision],
        cfg.latency_batch_size,
        float(row[C.latency_ms]),
        layers.to_dict("records"),
        summary,
    )


def profile_candidate(
    model: nn.Module,
    precision: str,
    hw: HardwareAnalysis,
    row: dict[str, Any],
    cfg: ExperimentConfig,
    input_shape: tuple[int, int, int],
    target: HardwareProfile,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
    runtime: str = "eager",
) -> dict[str, Any]:
    example = torch.zeros(cfg.latency_batch_size, *input_shape)
    table = build_hardware_profile_table(
        model,
        prepare(example) if prepare else example,
        target,
        hw.layerwise_frame(),
        int(row.get(C.peak_activation_bytes) or 0),
        precision,
        cfg.stream_interval_ms,
        cfg.profile_repeats,
        cfg.benchmark_threads,
        subject=hw.candidate_id,
    )
    data = table.to_dict()
    data["profiled"] = (
        "the module as run"
        if runtime == "eager"
        else f"its eager PyTorch equivalent: the PyTorch profiler cannot see inside {runtime}"
    )
    return data


def _projection(
    record: CandidateResult, device: str, latency: dict[str, float | None], watts: float
) -> Projection:
    """The record's modelled figures on ``device``: the projected p50, a p95 with this host's
    p95/p50 ratio for the candidate (the tail is assumed to scale with the median), and the
    energy at the device's active power."""
    p50 = latency.get(record.candidate_id)
    if p50 is None:
        return Projection(device, None, None)
    m = record.metrics
    p95 = None
    if m is not None and m.latency_p50_ms and m.latency_p95_ms is not None:
        p95 = p50 * m.latency_p95_ms / m.latency_p50_ms
    return Projection(device, p50, p50 / 1000.0 * watts, p95)


def project_candidates(
    records: Sequence[CandidateResult],
    hw_candidates: Sequence[HardwareAnalysis],
    host: HardwareProfile,
    target: HardwareProfile,
) -> tuple[list[CandidateResult], dict[str, Any]]:
    """Each record with its projection onto ``target`` (a model, beside the measured figures:
    ``latency_ms_projected_<device>`` and ``energy_j_projected_<device>``), and the
    leave-one-out validation of that model on this host."""
    layers = {h.candidate_id: h.layerwise_frame() for h in hw_candidates}
    frame = records_frame(records)
    column = f"latency_ms_projected_{target.name}"
    if frame.empty:
        return list(records), {"column": column, "validation": None}
    measured = frame[frame[C.candidate_id].isin(layers)].copy()
    if measured.empty:
        return list(records), {"column": column, "validation": None}
    measured[C.roofline_ms_host] = [
        roofline_time_ms(layers[c], host, p)
        for c, p in zip(measured[C.candidate_id], measured[C.precision], strict=True)
    ]
    measured["operators"] = [operator_count(layers[c]) for c in measured[C.candidate_id]]
    projected = project_latencies(measured, host, target, layers)
    latency = {
        cid: None if pd.isna(ms) else float(ms)
        for cid, ms in zip(measured[C.candidate_id], projected, strict=True)
    }
    # Modelled energy on the target: projected latency x the device's active power.
    watts = target.active_power_watts.value
    out = [replace(r, projection=_projection(r, target.name, latency, watts)) for r in records]
    validation = validate_projection(measured)
    return out, {
        "column": column,
        "energy_column": f"energy_j_projected_{target.name}",
        "target_active_power_watts": asdict(target.active_power_watts),
        "target": target.name,
        "host": host.name,
        "validation": validation.to_dict(),
    }
