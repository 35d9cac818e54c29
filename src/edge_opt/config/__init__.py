"""Configuration: YAML in, one validated and frozen ``ExperimentConfig`` out.

``config.schema`` holds the keys, ``config.sections`` the nested ones (model, dataset,
executor, search), ``config.loading`` reads YAML and ``--set`` overrides, ``config.reference``
generates the reference docs, ``config.yaml_input`` reads YAML safely."""

from __future__ import annotations

from edge_opt.config.loading import (
    RENAMED_KEYS,
    build_config,
    dump_config,
    load_config,
    parse_override,
)
from edge_opt.config.reference import (
    describe_fields,
    field_names,
)
from edge_opt.config.schema import (
    DATASET_NAMES,
    ExperimentConfig,
)
from edge_opt.config.sections import (
    DATASET_FORMAT_NAMES,
    DATASET_SPEC_KEYS,
    EXECUTOR_KEYS,
    MODEL_SPEC_KEYS,
    NESTED_KEYS,
    RAY_BUILTIN_RESOURCES,
    RAY_RESOURCE,
    SEARCH_KEYS,
    DatasetSpec,
    ExecutorSpec,
    ModelSpec,
    SearchConfig,
)
from edge_opt.config.types import (
    MAX_BATCH,
    MAX_BUDGET_MB,
    MAX_EPOCHS,
    MAX_IMAGES,
    MAX_LIST,
    MAX_SEED,
    Dim,
    Flag,
    Int,
    PrecisionName,
    QuantBackend,
    Real,
    Seed,
    Stat,
)

__all__ = [
    "DATASET_FORMAT_NAMES",
    "DATASET_NAMES",
    "DATASET_SPEC_KEYS",
    "DatasetSpec",
    "Dim",
    "EXECUTOR_KEYS",
    "ExecutorSpec",
    "ExperimentConfig",
    "Flag",
    "Int",
    "MAX_BATCH",
    "MAX_BUDGET_MB",
    "MAX_EPOCHS",
    "MAX_IMAGES",
    "MAX_LIST",
    "MAX_SEED",
    "MODEL_SPEC_KEYS",
    "ModelSpec",
    "NESTED_KEYS",
    "PrecisionName",
    "QuantBackend",
    "RAY_BUILTIN_RESOURCES",
    "RAY_RESOURCE",
    "RENAMED_KEYS",
    "Real",
    "SEARCH_KEYS",
    "SearchConfig",
    "Seed",
    "Stat",
    "build_config",
    "describe_fields",
    "dump_config",
    "field_names",
    "load_config",
    "parse_override",
]
