"""Structured channel pruning: remove whole output channels by L1 norm, fix every consumer.

``structured_channel_prune`` works on any traceable CNN through torch-pruning's dependency
graph (DepGraph): a group is a set of coupled channels (a conv's filters, its BatchNorm, the
next layer's input channels, the channels tied together by a residual add, a depthwise conv's
groups), scored by the L1 norm of the group's first layer (``group_reduction="first"``,
no normalisation: exactly plain per-filter L1). Each group keeps ``int(C * (1 - level))`` of
its channels (at least one); the classifier's outputs are never pruned. With ``scope="global"``
one threshold is applied across groups instead of the same ratio per group; scores are then
mean-reduced over the group and mean-normalised per group, so that layers of different sizes
compare fairly.

``reference_l1_prune`` is the hand-written SmallCNN version: the test oracle the library's
result must match exactly.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import nn

from edge_opt.errors import PruningError
from edge_opt.models.zoo import SmallCNN

PruningScope = Literal["uniform", "global"]


def kept_channel_count(channels: int, pruning_level: float) -> int:
    """Channels that survive ``pruning_level`` (torch-pruning's rounding, at least 1)."""
    return max(1, int(channels * (1.0 - pruning_level)))


def _check_level(pruning_level: float) -> None:
    if not 0.0 <= pruning_level < 1.0:
        raise PruningError(
            f"pruning_level: {pruning_level!r} is outside [0, 1); e.g. 0.5 removes half"
        )


def classifier_layer(model: nn.Module) -> nn.Module | None:
    """The layer whose outputs are the classes: the last Linear (or last conv if none)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


DEFAULT_SPATIAL = (28, 28)  # H, W assumed when a model declares no input_shape


def inferred_input_shape(model: nn.Module) -> tuple[int, int, int]:
    """(C, H, W) of one input, inferred for tracing.

    C is the first ``Conv2d``'s ``in_channels`` (else the declared C); H, W come from the
    model's ``input_shape`` attribute when it declares one, else 28 x 28.

    Raises:
        PruningError: the model has neither a ``Conv2d`` nor an ``input_shape`` attribute.
    """
    declared = getattr(model, "input_shape", None)
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None and declared is None:
        raise PruningError(
            f"example_inputs: cannot infer the input of {type(model).__name__} (no Conv2d, no "
            "`input_shape` attribute); pass example_inputs=torch.zeros(1, C, H, W)"
        )
    height, width = DEFAULT_SPATIAL if declared is None else tuple(declared)[-2:]
    channels = conv.in_channels if conv is not None else tuple(declared)[0]
    return (int(channels), int(height), int(width))


def structured_channel_prune(
    model: nn.Module,
    pruning_level: float,
    example_inputs: torch.Tensor | None = None,
    *,
    scope: PruningScope = "uniform",
    channel_multiple: int = 1,
) -> nn.Module:
    """Return a new, smaller model with whole channels removed (the caller's is untouched).

    Args:
        model: any CNN torch-pruning can trace (BatchNorm, residual adds, depthwise convs and
            several linear layers are handled).
        pruning_level: fraction of channels to remove, in [0, 1); 0 returns a copy.
        example_inputs: one input batch for tracing; default: zeros of
            ``inferred_input_shape(model)`` (the first conv's ``in_channels``; H x W from the
            model's ``input_shape`` attribute, else 28 x 28). Pass it when the model expects
            another spatial size.
        scope: ``uniform`` (the same ratio in every group) or ``global`` (one L1 threshold
            across groups; the average ratio is ``pruning_level``).
        channel_multiple: round each pruned group's kept channels down to a multiple of this
            (hardware-friendly widths); a group that would keep none is left unpruned
            (torch-pruning's ``round_to``), so at high levels rounding can keep more MACs;
            1 keeps the exact count.

    Returns:
        The pruned copy: a dense model with fewer channels, same class.

    Raises:
        PruningError: bad level or scope, an input that cannot be inferred (the message says
            what ``example_inputs`` to pass), or a model the dependency graph cannot handle.

    Example:
        >>> pruned = structured_channel_prune(SmallCNN(), 0.5)
        >>> pruned.conv1.out_channels, pruned.classifier.in_features
        (8, 784)
    """
    pruner = StepPruner.of(
        model, pruning_level, 1, example_inputs, scope=scope, channel_multiple=channel_multiple
    )
    pruner.step()
    return pruner.model


class StepPruner:
    """A copy of a model pruned to ``level`` in ``steps`` equal steps (torch-pruning's iterative
    pruning): after step i every group keeps ``int(C * (1 - level * i / steps))`` of its
    original C channels, ranked by L1 on the weights the model holds then (so fine-tuning
    between steps decides what the next step keeps). The last step ends on the channel counts
    of one-shot pruning (``uniform`` scope). ``model`` is pruned in place at each ``step``: load
    trained weights into it (``load_state_dict``) between steps, do not replace it."""

    def __init__(
        self,
        model: nn.Module,
        pruner: object | None,
        steps: int,
        name: str,
        example: torch.Tensor | None = None,
        level: float = 0.0,
    ) -> None:
        self.model = model
        self.steps = steps
        self.steps_done = 0
        self._pruner = pruner
        self._name = name
        self._example = example
        self._level = level

    @classmethod
    def of(
        cls,
        model: nn.Module,
        level: float,
        steps: int,
        example_inputs: torch.Tensor | tuple[int, int, int] | None = None,
        *,
        scope: PruningScope = "uniform",
        channel_multiple: int = 1,
    ) -> StepPruner:
        """Raises ``PruningError`` like ``structured_channel_prune``."""
        _check_level(level)
        if scope not in ("uniform", "global"):
            raise PruningError(f"pruning_scope: {scope!r} is not 'uniform' or 'global'")
        if channel_multiple not in (1, 4, 8, 16):
            raise PruningError(f"channel_multiple: {channel_multiple!r} is not one of 1, 4, 8, 16")
        if steps < 1 or (steps > 1 and (scope != "uniform" or channel_multiple != 1)):
            # Only then is the last step's width the one-shot width (a cached level is loaded
            # into the one-shot skeleton).
            raise PruningError(
                f"steps: {steps} must be >= 1, and 1 with a global scope or a channel_multiple"
            )
        pruned = copy.deepcopy(model)
        name = type(model).__name__
        if level == 0.0:
            return cls(pruned, None, steps, name)
        was_training = pruned.training
        pruned.eval()
        if isinstance(example_inputs, tuple):
            example_inputs = torch.zeros(1, *example_inputs)
        if example_inputs is None:
            example_inputs = _inferred_example(pruned, name)
        import torch_pruning as tp  # imported here: it is only needed when something is pruned

        head = classifier_layer(pruned)
        try:
            pruner = tp.pruner.BasePruner(
                pruned,
                example_inputs,
                importance=_importance(scope),
                pruning_ratio=level,
                iterative_steps=steps,
                global_pruning=scope == "global",
                ignored_layers=[head] if head is not None else [],
                round_to=channel_multiple if channel_multiple > 1 else None,
            )
        except Exception as exc:  # torch-pruning raises many types; say which model and why
            raise PruningError(
                f"cannot prune {name} at {level}: {type(exc).__name__}: {exc}"
            ) from exc
        return cls(pruned.train(was_training), pruner, steps, name, example_inputs, level)

    def step(self) -> None:
        """The next step, in place (a no-op at level 0 or after the last step)."""
        if self.steps_done >= self.steps:
            return
        self.steps_done += 1
        if self._pruner is None:
            return
        was_training = self.model.training
        self.model.eval()
        try:
            self._pruner.step()  # type: ignore[attr-defined]
            with torch.no_grad():
                self.model(self._example)  # the pruned graph must still run
        except Exception as exc:  # torch-pruning raises many types; say which model and why
            raise PruningError(
                f"cannot prune {self._name} at {self._level} (step {self.steps_done} of "
                f"{self.steps}): {type(exc).__name__}: {exc}"
            ) from exc
        self.model.train(was_training)


def _importance(scope: PruningScope) -> object:
    """torch-pruning's L1 channel importance for ``scope``."""
    import torch_pruning as tp

    if scope == "uniform":
        # Plain per-filter L1 of the group's first layer: what the hand-written oracle does.
        return tp.importance.MagnitudeImportance(p=1, group_reduction="first", normalizer=None)
    # Across layers raw L1 is not comparable (fan-in differs): mean-normalise per group,
    # torch-pruning's default for global ranking.
    return tp.importance.MagnitudeImportance(p=1, group_reduction="mean", normalizer="mean")


def _inferred_example(model: nn.Module, name: str) -> torch.Tensor:
    """Zeros of the inferred input shape, checked by one forward pass (model in eval mode)."""
    shape = inferred_input_shape(model)
    example = torch.zeros(1, *shape)
    try:
        with torch.no_grad():
            model(example)
    except Exception as exc:  # most often the guessed H x W (or C) is not what it expects
        raise PruningError(
            f"example_inputs: {name} does not run on the inferred input shape {list(shape)} "
            f"({type(exc).__name__}: {exc}); pass the input it expects, e.g. "
            f"structured_channel_prune(model, level, example_inputs=torch.zeros(1, {shape[0]}, "
            "H, W))"
        ) from exc
    return example


# ------------------------------------------------------------------------- the test oracle
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


def reference_l1_prune(model: SmallCNN, pruning_level: float) -> SmallCNN:
    """Hand-written L1 structured pruning of a SmallCNN (the oracle for the library path).

    Each conv keeps its ``int(C * (1 - level))`` largest-L1 filters in their original order;
    conv2's input channels and the classifier's input features (each kept conv2 channel owns
    H/4 x W/4 consecutive features) are cut to match.
    """
    _check_level(pruning_level)
    if not isinstance(model, SmallCNN):
        raise PruningError(f"reference_l1_prune supports SmallCNN, got {type(model).__name__}")
    if pruning_level == 0.0:
        return copy.deepcopy(model)
    keep1 = select_channels(model.conv1, pruning_level)
    keep2 = select_channels(model.conv2, pruning_level)
    spatial = model.classifier.in_features // model.conv2.out_channels
    # Flatten order is (channel, h, w): channel c owns features [c*spatial, (c+1)*spatial).
    keep_features = (keep2[:, None] * spatial + torch.arange(spatial)[None, :]).reshape(-1)
    channels, size, _ = model.input_shape
    pruned = SmallCNN(len(keep1), len(keep2), model.classifier.out_features, channels, size)
    with torch.no_grad():
        pruned.conv1.weight.copy_(model.conv1.weight[keep1])
        pruned.conv1.bias.copy_(model.conv1.bias[keep1])
        pruned.conv2.weight.copy_(model.conv2.weight[keep2][:, keep1])
        pruned.conv2.bias.copy_(model.conv2.bias[keep2])
        pruned.classifier.weight.copy_(model.classifier.weight[:, keep_features])
        pruned.classifier.bias.copy_(model.classifier.bias)
    return pruned.train(model.training)
