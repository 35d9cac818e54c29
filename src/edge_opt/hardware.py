"""The seed's import path for hardware analysis (a facade): the code lives in
``edge_opt.analysis.hardware``."""

from __future__ import annotations

from edge_opt.analysis.hardware import (
    LAYER_COLUMNS,
    TRADEOFF_COLUMNS,
    TRADEOFF_REQUIRED,
    LayerEstimate,
    conv2d_macs,
    estimate_layerwise_stats,
    linear_macs,
    precision_tradeoff_table,
    save_hardware_artifacts,
    summarize_hardware,
)

__all__ = [
    "LAYER_COLUMNS",
    "LayerEstimate",
    "TRADEOFF_COLUMNS",
    "TRADEOFF_REQUIRED",
    "conv2d_macs",
    "estimate_layerwise_stats",
    "linear_macs",
    "precision_tradeoff_table",
    "save_hardware_artifacts",
    "summarize_hardware",
]
