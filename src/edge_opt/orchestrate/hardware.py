"""The run's hardware analysis: every measured candidate's layer table and bandwidth summary,
the projection onto the target device, and the operator profiles of the baseline and the pick.

Latencies were measured on this host: bandwidth utilisation compares with this host's
bandwidth unless the config gives one, and the target's roofline is the device profile's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import nn

from edge_opt.analysis.candidates import (
    HardwareAnalysis,
    analyse_candidate,
    profile_candidate,
    project_candidates,
)
from edge_opt.analysis.device_profiles import HOST_NAMES, HardwareProfile
from edge_opt.analysis.devices import get_device_profile, host_profile
from edge_opt.analysis.profiling import roofline_points
from edge_opt.analysis.projection import cross_device_validation
from edge_opt.candidates.columns import C
from edge_opt.candidates.plan import REFERENCE_ID
from edge_opt.candidates.record import CandidateResult, records_frame
from edge_opt.config.schema import ExperimentConfig
from edge_opt.config.types import detected_device
from edge_opt.decide.target import TargetContext
from edge_opt.infra.cpu import this_cpu
from edge_opt.measure.harness import HarnessSettings
from edge_opt.measure.metrics import MetricsOptions, collect_metrics
from edge_opt.orchestrate.baseline import TORCH_DEVICE, Baseline, RunInputs
from edge_opt.orchestrate.study import Study


@dataclass(frozen=True)
class HardwareReport:
    """The layer analyses, the two machines' profiles, and the baseline's measured row."""

    base_row: dict[str, Any]
    baseline: HardwareAnalysis
    candidates: list[HardwareAnalysis]
    host: HardwareProfile
    target: HardwareProfile

    def of(self, cid: str | None) -> HardwareAnalysis | None:
        return next((h for h in self.candidates if h.candidate_id == cid), None)


def _base_row(
    cfg: ExperimentConfig,
    inputs: RunInputs,
    baseline: Baseline,
    rows: dict[str, dict[str, Any]],
    harness: HarnessSettings,
    power_watts: float,
) -> dict[str, Any]:
    """``p00-fp32-eager``'s row, or the baseline measured now when that candidate has none."""
    row = rows.get(REFERENCE_ID)
    if row is not None and row[C.status] == "ok":
        return row
    options = MetricsOptions(
        cfg.benchmark_warmup,
        cfg.benchmark_trials,
        cfg.latency_batch_size,
        cfg.throughput_repeats,
        harness=harness,
    )
    metrics = collect_metrics(
        baseline.model,
        inputs.loaders.val,
        TORCH_DEVICE,
        power_watts,
        "fp32",
        cfg.latency_multiplier,
        cfg.benchmark_repeats,
        options=options,
    )
    return {C.candidate_id: "baseline-fp32", C.precision: "fp32", **metrics.to_dict()}


def analyse_hardware(
    cfg: ExperimentConfig,
    inputs: RunInputs,
    baseline: Baseline,
    study: Study,
    harness: HarnessSettings,
    power_watts: float,
) -> HardwareReport:
    """Stage ``analysis``: layer tables and summaries of the baseline and every timed candidate."""
    rows = {r[C.candidate_id]: r for r in records_frame(study.records).to_dict("records")}
    base_row = _base_row(cfg, inputs, baseline, rows, harness, power_watts)
    host = host_profile(cfg.benchmark_threads, cfg.power_watts, cfg.refresh_host_profile)
    target = get_device_profile(cfg.device, cfg.benchmark_threads, cfg.power_watts)
    if cfg.memory_bandwidth_gbps is not None:
        target = target.with_bandwidth(cfg.memory_bandwidth_gbps)
    bandwidth = cfg.memory_bandwidth_gbps or host.memory_bandwidth_gbps.value
    shape = inputs.input_shape
    base = analyse_candidate(baseline.model, base_row, cfg, shape, bandwidth, target)
    analysed = [
        analyse_candidate(study.float_model(r), rows[r.candidate_id], cfg, shape, bandwidth, target)
        for r in study.records
        if r.status == "ok" and r.metrics is not None
    ]
    return HardwareReport(base_row, base, analysed, host, target)


def project(
    records: Sequence[CandidateResult], hardware: HardwareReport
) -> tuple[list[CandidateResult], dict[str, Any]]:
    """The records with their projection onto the target, and its validation (leave-one-out
    on this host; against the device's own measurements when a device node timed some)."""
    projected, validation = project_candidates(
        records, hardware.candidates, hardware.host, hardware.target
    )
    validation["cross_device"] = cross_device_validation(records_frame(projected))
    return projected, validation


def target_context(hardware: HardwareReport, projection: dict[str, Any]) -> TargetContext:
    """The target as the verdict sees it: whether it is this machine, which of its rates are
    unknown (and why), and how well the projection onto it held on this host."""
    target = hardware.target
    # This machine: `host`, or the registered board edge-opt is running on.
    here = target.name in HOST_NAMES or detected_device(this_cpu().board) == target.name
    unknown = {
        dtype: figure.note or "no source for it"
        for dtype, figure in target.peak_gmacs.items()
        if not target.known(dtype)
    }
    return TargetContext(
        target.name, target.description, here, unknown, projection.get("validation")
    )


@dataclass(frozen=True)
class Profiles:
    """Operator profiles (baseline, and the pick when there is one) and the roofline points."""

    tables: list[dict[str, Any]]
    roofline_layers: pd.DataFrame
    roofline_candidates: list[dict[str, Any]]


def profile_run(
    cfg: ExperimentConfig,
    inputs: RunInputs,
    baseline: nn.Module,
    study: Study,
    hardware: HardwareReport,
    recommended: str | None,
) -> Profiles:
    """Stage ``profiling``: the operator profiles of the baseline and of the pick (its eager
    equivalent when it runs elsewhere), and the roofline's points."""
    shape, target = inputs.input_shape, hardware.target
    base = hardware.baseline
    tables = [profile_candidate(baseline, "fp32", base, hardware.base_row, cfg, shape, target)]
    pick = hardware.of(recommended)
    if pick is not None:
        model = study.built[pick.candidate_id]
        row = next(r for r in study.records if r.candidate_id == pick.candidate_id).to_row()
        tables.append(
            profile_candidate(
                model.eager.model,
                pick.precision,
                pick,
                row,
                cfg,
                shape,
                target,
                model.eager.prepare_input,
                model.runtime,
            )
        )
    points = [
        {
            C.candidate_id: h.candidate_id,
            "precision": h.precision,
            "intensity_macs_per_byte": h.summary["arithmetic_intensity_macs_per_byte"],
            "achieved_gmacs": h.summary["achieved_gmacs"],
            "target_knee_macs_per_byte": h.summary["target_knee_macs_per_byte"],
            "target_bound_regime": h.summary["target_bound_regime"],
        }
        for h in hardware.candidates
    ]
    return Profiles(tables, roofline_points(base.layerwise_frame(), target, "fp32"), points)
