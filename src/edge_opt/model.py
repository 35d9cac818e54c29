"""Models: the specified SmallCNN and a registry that other models join by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from edge_opt.errors import ModelError
from edge_opt.registry import Registry

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model", ModelError)
register_model = MODELS.register  # @register_model("Name") adds a factory; duplicates are refused


def registered_models() -> list[str]:
    """Names accepted by ``create_model`` and the config's ``model`` key."""
    return sorted(MODELS.names())


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Raises:
        ModelError: the name is not registered or the arguments do not fit.
    """
    factory = MODELS.get(name)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ModelError(f"model {name!r}: bad arguments {kwargs} ({exc})") from None


@register_model("SmallCNN")
class SmallCNN(nn.Module):
    """conv 1->16 (3x3, pad 1) -> ReLU -> maxpool 2 -> conv 16->32 (3x3, pad 1) -> ReLU
    -> maxpool 2 -> flatten -> linear 32*7*7 -> 10, for 1x28x28 inputs.

    Channel counts are arguments so that a pruned copy is again a ``SmallCNN``.
    """

    def __init__(
        self, conv1_channels: int = 16, conv2_channels: int = 32, num_classes: int = 10
    ) -> None:
        super().__init__()
        for arg, value in (
            ("conv1_channels", conv1_channels),
            ("conv2_channels", conv2_channels),
            ("num_classes", num_classes),
        ):
            if value < 1:
                raise ModelError(f"SmallCNN: {arg}={value} must be >= 1")
        self.conv1 = nn.Conv2d(1, conv1_channels, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(conv1_channels, conv2_channels, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.classifier = nn.Linear(conv2_channels * 7 * 7, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 1, 28, 28) -> (N, c1, 14, 14) -> (N, c2, 7, 7) -> (N, num_classes)
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.classifier(torch.flatten(x, 1))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
