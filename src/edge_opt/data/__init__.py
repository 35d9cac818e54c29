"""Data: dataset formats behind a registry (``data.formats``), seeded splits and deterministic
loaders (``data.splits``), image decoding (``data.imaging``). Nothing downloads."""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: ``import edge_opt.data.imaging`` (what ``predict`` needs) stays torch-free.
_HOMES = {
    "dataset_format": "edge_opt.data.formats",
    "load_dataset": "edge_opt.data.formats",
    "DEFAULT_VAL_HOLDOUT": "edge_opt.data.splits",
    "SINGLE_POOL_TEST_FRACTION": "edge_opt.data.splits",
    "SINGLE_POOL_VAL_FRACTION": "edge_opt.data.splits",
    "DataSplits": "edge_opt.data.splits",
    "Loaders": "edge_opt.data.splits",
    "batch_loader": "edge_opt.data.splits",
    "build_loaders": "edge_opt.data.splits",
    "calibration_inputs": "edge_opt.data.splits",
    "loader_batch_size": "edge_opt.data.splits",
    "make_loaders": "edge_opt.data.splits",
    "split_dataset": "edge_opt.data.splits",
}

__all__ = [
    "DEFAULT_VAL_HOLDOUT",
    "DataSplits",
    "Loaders",
    "SINGLE_POOL_TEST_FRACTION",
    "SINGLE_POOL_VAL_FRACTION",
    "batch_loader",
    "build_loaders",
    "calibration_inputs",
    "dataset_format",
    "load_dataset",
    "loader_batch_size",
    "make_loaders",
    "split_dataset",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'edge_opt.data' has no attribute {name!r}")
