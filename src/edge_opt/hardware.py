"""edge-opt v1's import path for hardware analysis (a facade): the code lives in
``edge_opt.models.layers`` and ``edge_opt.analysis.hardware`` (the files:
``edge_opt.reports.hardware_files``)."""

from __future__ import annotations

from edge_opt.analysis.hardware import (
    TRADEOFF_COLUMNS,
    TRADEOFF_REQUIRED,
    precision_tradeoff_table,
    summarize_hardware,
)
from edge_opt.models.layers import (
    LAYER_COLUMNS,
    LayerEstimate,
    conv2d_macs,
    estimate_layerwise_stats,
    linear_macs,
)
from edge_opt.reports.hardware_files import (
    save_hardware_artifacts,
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
