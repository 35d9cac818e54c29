"""The search space: a model's channel groups, per-group pruning ratios, and cheap estimates.

A *channel group* is a set of coupled output channels in torch-pruning's dependency graph (a
conv's filters with its BatchNorm and every consumer; convs tied by a residual add are one
group). A group is named after its first prunable member in module order (``stem.0``,
``block2.conv1``); the classifier's outputs are never a group. ``prune_groups`` removes a
fraction of each group's channels by the same plain per-filter L1 rule as
``structured_channel_prune`` (one ratio for every group gives the same model as that uniform
level), through torch-pruning's ``pruning_ratio_dict``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from edge_opt.compress.pruning import classifier_layer
from edge_opt.errors import PruningError

PRUNABLE = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class ChannelGroup:
    """One set of coupled output channels: its name, width and the layers it spans."""

    name: str
    channels: int
    members: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "channels": self.channels, "members": list(self.members)}


def _dependency_groups(model: nn.Module, example: torch.Tensor) -> list[tuple[str, ...]]:
    """Member names (module order) of each prunable group, groups in module order."""
    import torch_pruning as tp  # only needed when a search runs

    graph = tp.DependencyGraph().build_dependency(model, example)
    order = {module: i for i, (_, module) in enumerate(model.named_modules())}
    names = {module: name for name, module in model.named_modules()}
    head = classifier_layer(model)
    groups = []
    for group in graph.get_all_groups(
        ignored_layers=[head] if head is not None else [], root_module_types=list(PRUNABLE)
    ):
        members = {
            dep.target.module
            for dep, _ in group
            if isinstance(dep.target.module, PRUNABLE)
            and graph.is_out_channel_pruning_fn(dep.handler)
        }
        if members:
            groups.append(tuple(names[m] for m in sorted(members, key=order.__getitem__)))
    return sorted(groups, key=lambda g: order[model.get_submodule(g[0])])


def _width(module: nn.Module) -> int:
    return int(module.out_channels if isinstance(module, nn.Conv2d) else module.out_features)


def channel_groups(model: nn.Module, example: torch.Tensor) -> list[ChannelGroup]:
    """The prunable channel groups of ``model`` (traced on ``example``), in module order.

    Raises:
        PruningError: torch-pruning cannot trace the model.
    """
    try:
        groups = _dependency_groups(model.eval(), example)
    except Exception as exc:  # torch-pruning raises many types; say which model and why
        raise PruningError(
            f"cannot find the channel groups of {type(model).__name__}: {type(exc).__name__}: {exc}"
        ) from exc
    return [ChannelGroup(g[0], _width(model.get_submodule(g[0])), g) for g in groups]


def prune_groups(
    model: nn.Module,
    ratios: Mapping[str, float],
    example: torch.Tensor,
    channel_multiple: int = 1,
) -> nn.Module:
    """A new model with ``ratios[group]`` of each named group's channels removed (L1).

    Args:
        model: the float model (not modified).
        ratios: group name (``ChannelGroup.name``) -> fraction removed, each in [0, 1);
            a group not named keeps every channel.
        example: one input batch for tracing.
        channel_multiple: kept channels rounded down to a multiple (torch-pruning's round_to).

    Raises:
        PruningError: an unknown group, a ratio outside [0, 1), or a failed pruning.
    """
    pruned = copy.deepcopy(model).eval()
    modules = dict(pruned.named_modules())
    for name, ratio in ratios.items():
        if name not in modules:
            raise PruningError(f"group {name!r}: no such layer in {type(model).__name__}")
        if not 0.0 <= ratio < 1.0:
            raise PruningError(f"group {name!r}: ratio {ratio!r} is outside [0, 1)")
    active = {modules[name]: float(ratio) for name, ratio in ratios.items() if ratio > 0}
    if not active:
        return pruned
    import torch_pruning as tp

    head = classifier_layer(pruned)
    try:
        pruner = tp.pruner.BasePruner(
            pruned,
            example,
            importance=tp.importance.MagnitudeImportance(
                p=1, group_reduction="first", normalizer=None
            ),
            pruning_ratio=0.0,
            pruning_ratio_dict=active,
            ignored_layers=[head] if head is not None else [],
            round_to=channel_multiple if channel_multiple > 1 else None,
        )
        pruner.step()
        with torch.no_grad():
            pruned(example)  # the pruned graph must still run
    except Exception as exc:
        raise PruningError(
            f"cannot prune {type(model).__name__} with ratios {dict(ratios)}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return pruned


def removed_fraction(pruned: nn.Module, groups: list[ChannelGroup]) -> float:
    """Share of all groups' channels removed in ``pruned`` (the trial's overall level)."""
    total = sum(g.channels for g in groups)
    kept = sum(_width(pruned.get_submodule(g.name)) for g in groups)
    return 1.0 - kept / total if total else 0.0
