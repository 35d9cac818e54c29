"""The config's reference, generated from the schema: every key, its default and its meaning
(the source of ``docs/configuration.md``)."""

from __future__ import annotations

import json

from pydantic import (
    BaseModel,
)

from edge_opt.config.schema import ExperimentConfig
from edge_opt.config.sections import ModelSpec, SearchConfig


def field_names() -> list[str]:
    """All valid configuration keys, in declaration order."""
    return list(ExperimentConfig.model_fields)


def describe_fields() -> list[tuple[str, str, str]]:
    """(key, default, description) for every key (docs/configuration.md's table)."""
    rows = []
    for name, info in ExperimentConfig.model_fields.items():
        default = info.get_default(call_default_factory=True)
        if isinstance(default, tuple):
            default = list(default)
        if isinstance(default, ModelSpec):
            default = default.label()
        if isinstance(default, SearchConfig):
            default = {"strategy": default.strategy}
        elif isinstance(default, BaseModel):
            default = default.model_dump()
        rows.append((name, json.dumps(default), info.description or ""))
    return rows
