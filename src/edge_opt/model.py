"""edge-opt v1's import path for models (a facade): the code lives in ``edge_opt.models``."""

from __future__ import annotations

from edge_opt.models.zoo import (
    MODELS,
    BasicBlock,
    BuiltModel,
    DepthwiseSeparable,
    ModelEntry,
    ModelFactory,
    SmallCNN,
    TinyMobileNet,
    TinyResNet,
    build_model,
    count_parameters,
    create_model,
    load_checkpoint,
    load_factory,
    register_model,
    registered_models,
)

__all__ = [
    "BasicBlock",
    "BuiltModel",
    "DepthwiseSeparable",
    "MODELS",
    "ModelEntry",
    "ModelFactory",
    "SmallCNN",
    "TinyMobileNet",
    "TinyResNet",
    "build_model",
    "count_parameters",
    "create_model",
    "load_checkpoint",
    "load_factory",
    "register_model",
    "registered_models",
]
