"""The typed record of one candidate: what the stages hand each other, and its row.

A ``CandidateResult`` is made once a candidate is prepared and timed; later stages return a new
record with their part filled in (``dataclasses.replace``): where it was measured, the target
device's own timing, the projection onto the target, the latency-budget check, the search's
facts. Its row (``to_row``) follows the column schema (``candidates.columns``); the frame of a
run is made from the records (``records_frame``), never extended column by column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C, ordered
from edge_opt.measure.metrics import CandidateMetrics
from edge_opt.measure.statistics import LatencyStats

BYTES_PER_MB = 2**20


def budget_column(budget_mb: float) -> str:
    """The column of one listed memory budget: ``violates_1mb``, ``violates_0.125mb``."""
    return f"violates_{budget_mb:g}mb"


@dataclass(frozen=True)
class DeviceTiming:
    """The candidate timed on the target device's node, by the same harness."""

    stats: LatencyStats
    measured_on: str  # the node as it describes itself

    def to_row(self) -> dict[str, Any]:
        s = self.stats
        return {
            C.device_latency_p50_ms: s.p50_ms,
            C.device_latency_p50_ci95_low_ms: s.p50_ci95_low_ms,
            C.device_latency_p50_ci95_high_ms: s.p50_ci95_high_ms,
            C.device_latency_p95_ms: s.p95_ms,
            C.device_latency_mean_ms: s.mean_ms,
            C.device_latency_std_ms: s.std_ms,
            C.device_noisy: s.noisy,
            C.device_measured_on: self.measured_on,
        }


@dataclass(frozen=True)
class Projection:
    """Modelled figures on the target device (never a measurement)."""

    device: str
    latency_ms: float | None  # projected p50
    energy_j: float | None  # projected latency x the device profile's active power
    latency_p95_ms: float | None = None  # projected p50 x this host's p95/p50

    def to_row(self) -> dict[str, Any]:
        return {
            f"latency_ms_projected_{self.device}": self.latency_ms,
            f"latency_p95_ms_projected_{self.device}": self.latency_p95_ms,
            f"energy_j_projected_{self.device}": self.energy_j,
        }


@dataclass(frozen=True)
class SlowerThanLessPruned:
    """Whether a less pruned candidate of the same precision and runtime is faster beyond
    both CIs (None: not timed), and the fastest such one."""

    slower: bool | None
    beaten_by: str | None = None


@dataclass(frozen=True)
class SearchInfo:
    """What a search adds to a row: the trial, its generation and the stage that ended it."""

    stage: str
    trial: int | None = None
    generation: int | None = None
    accuracy_subset: float | None = None
    latency_estimate_ms: float | None = None
    roofline_ms_host: float | None = None
    ratios: Mapping[str, float] = field(default_factory=dict)
    reference: bool = False  # the unpruned fp32 eager row: no trial figures

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            C.search_trial: self.trial,
            C.search_generation: self.generation,
            C.search_stage: self.stage,
        }
        if not self.reference:
            row[C.search_accuracy_subset] = self.accuracy_subset
            row[C.latency_estimate_ms] = self.latency_estimate_ms
            row[C.roofline_ms_host] = self.roofline_ms_host
        row.update({f"ratio.{group}": ratio for group, ratio in self.ratios.items()})
        return row


@dataclass(frozen=True)
class CandidateResult:
    """One candidate: identity, outcome, measurements, verdicts, and what later stages add."""

    candidate_id: str
    pruning_level: float
    precision: str
    runtime: str
    status: str  # ok, failed, skipped (a runtime that cannot run the precision), screened
    error: str | None
    parameter_count: int | None
    macs_per_sample: int | None
    fine_tune_epochs: int
    metrics: CandidateMetrics | None
    test_accuracy: float | None
    accepted: bool
    active_budget_mb: float
    budget_metric: str = "model"
    budget_violations: Mapping[float, bool | None] = field(default_factory=dict)
    peak_activation_bytes: int | None = None
    runtime_memory_mb: float | None = None
    ref_top1_agreement: float | None = None
    ref_max_abs_error: float | None = None
    measured_peak_rss_mb: float | None = None
    measured_peak_rss_warm_mb: float | None = None
    rss_note: str | None = None
    speedup_vs_baseline: float | None = None
    speedup_q25: float | None = None
    speedup_q75: float | None = None
    measure_seconds: float = 0.0
    prepared_from_cache: bool = False
    size_bytes: int | None = None  # a row without metrics whose size is known (search)
    slower_than_less_pruned: SlowerThanLessPruned | None = None
    measured_on: str | None = None
    device: DeviceTiming | None = None
    projection: Projection | None = None
    latency_budget_figure_ms: float | None = None
    latency_budget_on: str | None = None
    violates_latency_budget: bool | None = None
    latency_budget_checked: bool = False
    search: SearchInfo | None = None

    @property
    def timed(self) -> bool:
        return self.metrics is not None

    def to_row(self) -> dict[str, Any]:
        """The row, keys in schema order; a part not made (no device, no search) adds none."""
        row: dict[str, Any] = {
            C.candidate_id: self.candidate_id,
            C.pruning_level: self.pruning_level,
            C.precision: self.precision,
            C.runtime: self.runtime,
            C.status: self.status,
            C.error: self.error,
            C.accepted: self.accepted,
            C.active_budget_mb: self.active_budget_mb,
            C.budget_metric: self.budget_metric,
            C.parameter_count: self.parameter_count,
            C.macs_per_sample: self.macs_per_sample,
            C.fine_tune_epochs: self.fine_tune_epochs,
        }
        if self.metrics is not None:
            metrics = self.metrics.to_dict()
            metrics.pop("precision", None)
            row.update(metrics)
        elif self.size_bytes is not None:
            row[C.model_size_bytes] = self.size_bytes
            row[C.memory_mb] = self.size_bytes / BYTES_PER_MB
        if self.search is None or self.status == "ok":
            row.update(self._measured_extras())
        if self.slower_than_less_pruned is not None:
            row[C.slower_than_less_pruned] = self.slower_than_less_pruned.slower
            row[C.faster_less_pruned] = self.slower_than_less_pruned.beaten_by
        if self.latency_budget_checked:
            row[C.latency_budget_figure] = self.latency_budget_figure_ms
            row[C.latency_budget_on] = self.latency_budget_on
            row[C.violates_latency_budget] = self.violates_latency_budget
        if self.measured_on is not None:
            row[C.measured_on] = self.measured_on
        if self.device is not None:
            row.update(self.device.to_row())
        if self.projection is not None:
            row.update(self.projection.to_row())
        if self.search is not None:
            row.update(self.search.to_row())
        return {name: row[name] for name in ordered(row)}

    def _measured_extras(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            C.test_accuracy: self.test_accuracy,
            C.ref_top1_agreement: self.ref_top1_agreement,
            C.ref_max_abs_error: self.ref_max_abs_error,
            C.peak_activation_bytes: self.peak_activation_bytes,
            C.runtime_memory_mb: self.runtime_memory_mb,
            C.measured_peak_rss_mb: self.measured_peak_rss_mb,
            C.measured_peak_rss_warm_mb: self.measured_peak_rss_warm_mb,
            C.rss_note: self.rss_note,
            C.speedup_vs_baseline: self.speedup_vs_baseline,
            C.speedup_q25: self.speedup_q25,
            C.speedup_q75: self.speedup_q75,
        }
        for budget, violated in self.budget_violations.items():
            row[budget_column(budget)] = violated
        row[C.measure_seconds] = self.measure_seconds
        row[C.prepared_from_cache] = self.prepared_from_cache
        return row

    def to_dict(self) -> dict[str, Any]:
        """The row (``to_row``): what ``sweep_results.csv`` holds for this candidate."""
        return self.to_row()


def records_frame(records: Iterable[CandidateResult]) -> pd.DataFrame:
    """The frame of a run: one row per record, every column any record has, in schema order
    (a record without a part gets empty cells there)."""
    return rows_frame([r.to_row() for r in records])


def rows_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (schema-keyed dicts) to a frame, columns in schema order."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return pd.DataFrame(list(rows), columns=ordered(columns))
