"""Per-run hardware analysis the pipeline orchestrates: layer tables and bandwidth summaries
per candidate, operator profiles, and the latency projection with its validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pandas as pd
import torch
from torch import nn

from edge_opt.analysis.devices import HardwareProfile
from edge_opt.analysis.hardware import estimate_layerwise_stats, summarize_hardware
from edge_opt.analysis.profiling import build_hardware_profile_table
from edge_opt.analysis.projection import (
    operator_count,
    project_latencies,
    roofline_time_ms,
    validate_projection,
)
from edge_opt.compress.quantization import BYTES_PER_ELEMENT
from edge_opt.config.schema import ExperimentConfig
from edge_opt.orchestrate.result import HardwareAnalysis


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
        bytes_per_element=BYTES_PER_ELEMENT[row["precision"]],
    )
    summary = summarize_hardware(layers, row["latency_ms"], bandwidth_gbps, cfg.peak_compute_gmacs)
    knee = target.knee_macs_per_byte(row["precision"])
    summary["target_device"] = target.name
    summary["target_knee_macs_per_byte"] = knee
    summary["target_bound_regime"] = (
        "memory-bound" if summary["arithmetic_intensity_macs_per_byte"] < knee else "compute-bound"
    )
    return HardwareAnalysis(
        row["candidate_id"],
        row["precision"],
        cfg.latency_batch_size,
        float(row["latency_ms"]),
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
        int(row.get("peak_activation_bytes") or 0),
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


def project_candidates(
    sweep: pd.DataFrame,
    hw_candidates: list[HardwareAnalysis],
    host: HardwareProfile,
    target: HardwareProfile,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Add ``latency_ms_projected_<device>`` (a model, next to the measured columns) and the
    leave-one-out validation of that model on this host."""
    layers = {h.candidate_id: h.layerwise_frame() for h in hw_candidates}
    measured = sweep[sweep["candidate_id"].isin(layers)].copy()
    column = f"latency_ms_projected_{target.name}"
    if measured.empty:
        return sweep, {"column": column, "validation": None}
    measured["roofline_ms_host"] = [
        roofline_time_ms(layers[c], host, p)
        for c, p in zip(measured["candidate_id"], measured["precision"], strict=True)
    ]
    measured["operators"] = [operator_count(layers[c]) for c in measured["candidate_id"]]
    projected = project_latencies(measured, host, target, layers)
    sweep = sweep.copy()
    sweep[column] = projected.reindex(sweep.index)
    # Modelled energy on the target: projected latency x the device's active power.
    energy_column = f"energy_j_projected_{target.name}"
    sweep[energy_column] = sweep[column] / 1000.0 * target.active_power_watts.value
    validation = validate_projection(measured)
    return sweep, {
        "column": column,
        "energy_column": energy_column,
        "target_active_power_watts": asdict(target.active_power_watts),
        "target": target.name,
        "host": host.name,
        "validation": validation.to_dict(),
    }
