"""edge-opt v1's import path for measuring one model (a facade): the code lives in
``edge_opt.measure.metrics`` (the deployed size: ``edge_opt.runtimes.base``)."""

from __future__ import annotations

from edge_opt.measure.metrics import (
    BYTES_PER_MB,
    INPUT_DTYPES,
    THROUGHPUT_ROUNDS,
    AccuracyResult,
    CandidateMetrics,
    MetricsOptions,
    assemble_metrics,
    collect_metrics,
    evaluate_accuracy,
    evaluate_predict,
    first_inputs,
    require_batches,
    throughput_settings,
    wilson_interval,
)
from edge_opt.runtimes.base import serialized_size_bytes

__all__ = [
    "AccuracyResult",
    "BYTES_PER_MB",
    "CandidateMetrics",
    "INPUT_DTYPES",
    "MetricsOptions",
    "THROUGHPUT_ROUNDS",
    "assemble_metrics",
    "collect_metrics",
    "evaluate_accuracy",
    "evaluate_predict",
    "first_inputs",
    "require_batches",
    "serialized_size_bytes",
    "throughput_settings",
    "wilson_interval",
]
