"""The seed's import path for measuring one model (a facade): the code lives in
``edge_opt.measure.metrics``."""

from __future__ import annotations

from edge_opt.measure.metrics import (
    BYTES_PER_MB,
    INPUT_DTYPES,
    THROUGHPUT_ROUNDS,
    AccuracyResult,
    CandidateMetrics,
    assemble_metrics,
    collect_metrics,
    evaluate_accuracy,
    evaluate_predict,
    first_inputs,
    require_batches,
    serialized_size_bytes,
    throughput_settings,
    wilson_interval,
)

__all__ = [
    "AccuracyResult",
    "BYTES_PER_MB",
    "CandidateMetrics",
    "INPUT_DTYPES",
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
