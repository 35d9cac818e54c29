"""A shared helper: run a model once with a forward hook on every leaf module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

LeafHook = Callable[[nn.Module, tuple[Any, ...], Any], None]


def run_with_leaf_hooks(model: nn.Module, example: torch.Tensor, hook: LeafHook) -> None:
    """Call ``model(example)`` under inference mode with ``hook`` on every leaf module."""
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
