"""Structured channel pruning: remove whole conv output channels by L1 norm, fix consumers.

A filter's importance is the L1 norm of its weights; the ``int(C * (1 - level))`` most
important filters of each conv layer survive (at least one), in their original order. The
consumers are fixed to match: the next conv's input channels and the classifier's input
features (for SmallCNN, each kept conv2 channel owns 7*7 consecutive classifier inputs).
The keep count rounds like torch-pruning's, so the two give the same shapes.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edge_opt.errors import PruningError
from edge_opt.model import SmallCNN


def kept_channel_count(channels: int, pruning_level: float) -> int:
    """Channels that survive ``pruning_level`` (torch-pruning's rounding, at least 1)."""
    return max(1, int(channels * (1.0 - pruning_level)))


def l1_filter_importance(conv: nn.Conv2d) -> torch.Tensor:
    """L1 norm of each output filter: shape (out_channels,)."""
    return conv.weight.detach().abs().sum(dim=(1, 2, 3))


def select_channels(conv: nn.Conv2d, pruning_level: float) -> torch.Tensor:
    """Indices (ascending) of the filters kept at ``pruning_level``."""
    scores = l1_filter_importance(conv)
    keep = kept_channel_count(scores.numel(), pruning_level)
    # Stable sort so that ties keep the lower index: the choice is deterministic.
    order = torch.sort(scores, descending=True, stable=True).indices
    return torch.sort(order[:keep]).values


def structured_channel_prune(model: nn.Module, pruning_level: float) -> nn.Module:
    """Return a new, smaller model with whole conv output channels removed.

    Args:
        model: a ``SmallCNN`` (dependency-aware pruning of other models is issue #4).
        pruning_level: fraction of each conv layer's output channels to remove, in [0, 1).

    Returns:
        A new ``SmallCNN`` with ``int(C * (1 - level))`` channels per conv layer; the
        caller's model is never modified. Level 0 returns an unchanged copy.

    Raises:
        PruningError: the level is out of range or the model is not supported.

    Example:
        >>> pruned = structured_channel_prune(SmallCNN(), 0.5)
        >>> pruned.conv1.out_channels, pruned.classifier.in_features
        (8, 784)
    """
    if not 0.0 <= pruning_level < 1.0:
        raise PruningError(
            f"pruning_level: {pruning_level!r} is outside [0, 1); e.g. 0.5 removes half"
        )
    if not isinstance(model, SmallCNN):
        raise PruningError(
            f"structured_channel_prune supports SmallCNN, got {type(model).__name__}"
        )
    if pruning_level == 0.0:
        return copy.deepcopy(model)

    keep1 = select_channels(model.conv1, pruning_level)
    keep2 = select_channels(model.conv2, pruning_level)
    spatial = model.classifier.in_features // model.conv2.out_channels  # 7*7 for 28x28 input
    # Flatten order is (channel, h, w): channel c owns features [c*spatial, (c+1)*spatial).
    keep_features = (keep2[:, None] * spatial + torch.arange(spatial)[None, :]).reshape(-1)

    pruned = SmallCNN(len(keep1), len(keep2), model.classifier.out_features)
    with torch.no_grad():
        pruned.conv1.weight.copy_(model.conv1.weight[keep1])
        pruned.conv1.bias.copy_(model.conv1.bias[keep1])
        pruned.conv2.weight.copy_(model.conv2.weight[keep2][:, keep1])
        pruned.conv2.bias.copy_(model.conv2.bias[keep2])
        pruned.classifier.weight.copy_(model.classifier.weight[:, keep_features])
        pruned.classifier.bias.copy_(model.classifier.bias)
    return pruned.train(model.training)
