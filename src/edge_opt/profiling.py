"""edge-opt v1's import path for hardware profiles (a facade): the code lives in
``edge_opt.analysis.profiling`` and ``edge_opt.analysis.device_profiles`` (the files:
``edge_opt.reports.hardware_files``)."""

from __future__ import annotations

from edge_opt.analysis.device_profiles import (
    Figure,
    HardwareProfile,
)
from edge_opt.analysis.profiling import (
    OPERATOR_COLUMNS,
    HardwareProfileTable,
    auto_adjust_batch_size,
    bottleneck,
    build_hardware_profile_table,
    cache_sensitivity,
    cnn_feature_count,
    compute_utilization,
    estimate_batch_memory_mb,
    profile_operators,
    roofline_points,
)
from edge_opt.reports.hardware_files import (
    plot_roofline,
    write_hardware_profile_artifacts,
)

__all__ = [
    "Figure",
    "HardwareProfile",
    "HardwareProfileTable",
    "OPERATOR_COLUMNS",
    "auto_adjust_batch_size",
    "bottleneck",
    "build_hardware_profile_table",
    "cache_sensitivity",
    "cnn_feature_count",
    "compute_utilization",
    "estimate_batch_memory_mb",
    "plot_roofline",
    "profile_operators",
    "roofline_points",
    "write_hardware_profile_artifacts",
]
