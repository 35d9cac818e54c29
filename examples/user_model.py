"""An example of bringing your own model: any module-level function returning an nn.Module.

configs/user_model.yaml points edge-opt at it with
    model: {factory: "examples/user_model.py:build_lenet", kwargs: {...}, input_shape: [1, 28, 28]}
"""

from __future__ import annotations

from torch import nn


class LeNet(nn.Module):
    def __init__(self, channels: int = 8, hidden: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 5, padding=2),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 5),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * channels * 5 * 5, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.head(self.features(x))


def build_lenet(channels: int = 8, hidden: int = 64, num_classes: int = 10) -> nn.Module:
    return LeNet(channels, hidden, num_classes)
