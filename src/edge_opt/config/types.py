"""Strict scalar types and the bounds every count and size of a config obeys."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AllowInfNan,
    Field,
    Strict,
)

PrecisionName = Literal["fp32", "fp16", "bf16", "int8"]


QuantBackend = Literal["x86", "fbgemm", "onednn", "qnnpack"]


# Strict scalars: YAML's own type must be right (no "64" -> 64, no yes -> 1, no 2.0 -> 2);
# an int is still accepted where a float is meant. Floats must be finite.
Int = Annotated[int, Strict()]


Real = Annotated[float, Strict(), AllowInfNan(False)]


Flag = Annotated[bool, Strict()]


MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most tools take 32-bit seeds


MAX_EPOCHS = 10_000


MAX_IMAGES = 10_000_000


MAX_BATCH = 65_536


MAX_LIST = 100


MAX_BUDGET_MB = 1_048_576.0  # 1 TiB


Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]


Dim = Annotated[int, Strict(), Field(ge=1, le=MAX_BATCH)]


Stat = Annotated[float, Strict(), AllowInfNan(False)]
