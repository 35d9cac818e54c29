"""edge-opt v1's import path for structured pruning (a facade): the code lives in
``edge_opt.compress.pruning``."""

from __future__ import annotations

from edge_opt.compress.pruning import (
    DEFAULT_SPATIAL,
    PruningScope,
    classifier_layer,
    inferred_input_shape,
    kept_channel_count,
    l1_filter_importance,
    reference_l1_prune,
    select_channels,
    structured_channel_prune,
)

__all__ = [
    "DEFAULT_SPATIAL",
    "PruningScope",
    "classifier_layer",
    "inferred_input_shape",
    "kept_channel_count",
    "l1_filter_importance",
    "reference_l1_prune",
    "select_channels",
    "structured_channel_prune",
]
