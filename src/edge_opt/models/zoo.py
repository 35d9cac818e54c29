"""Models: the specified SmallCNN, a small zoo of edge-style nets, user factories, checkpoints.

Built-in models (all accept ``num_classes`` and ``in_channels``):
- ``SmallCNN``: the specified conv-conv-linear net (``input_size`` 28 or 32);
- ``TinyResNet``: BatchNorm, two residual basic blocks (one strided, with a 1x1 projection
  shortcut), global average pooling and a two-layer head;
- ``TinyMobileNet``: depthwise-separable blocks (depthwise 3x3 + pointwise 1x1) with BatchNorm
  and ReLU6, global average pooling, a linear classifier.
The zoo nets pool globally, so they take 1x28x28 and 3x32x32 inputs alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from edge_opt.errors import ModelError
from edge_opt.infra.registry import Registry
from edge_opt.infra.stop import call_user_code
from edge_opt.infra.usercode import exception_line, load_callable

if TYPE_CHECKING:
    from edge_opt.config.schema import ExperimentConfig

ModelFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    factory: ModelFactory
    input_shape: tuple[int, int, int]  # (C, H, W) the defaults expect


MODELS: Registry[ModelEntry] = Registry("model", ModelError)


def register_model(
    name: str, input_shape: tuple[int, int, int] = (1, 28, 28)
) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator registering a model factory (a class or function) under ``name``.

    Duplicates are refused. ``input_shape`` is what the factory's defaults expect.
    """

    def decorator(factory: ModelFactory) -> ModelFactory:
        MODELS.register(name)(ModelEntry(factory, input_shape))
        return factory

    return decorator


def registered_models() -> list[str]:
    """Names accepted by ``create_model`` and the config's ``model`` key."""
    return sorted(MODELS.names())


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Raises:
        ModelError: the name is not registered or the arguments do not fit.
    """
    factory = MODELS.get(name).factory
    try:
        return factory(**kwargs)
    except ModelError:
        raise
    except TypeError as exc:
        raise ModelError(f"model {name!r}: bad arguments {kwargs} ({exc})") from None
    except (Exception, SystemExit) as exc:
        raise ModelError(f"model {name!r}: building it failed: {exception_line(exc)}") from exc


def load_factory(reference: str, field: str = "model.factory") -> ModelFactory:
    """Resolve ``"package.module:function"`` or ``"path/to/file.py:function"``; ``field`` names
    the config key in errors.

    Raises:
        ModelError: naming what could not be found (``infra.usercode.load_callable``).
    """
    return load_callable(reference, field, ModelError)


def load_checkpoint(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a state dict (``torch.load(..., weights_only=True)``) into ``model``, strictly.

    Accepts a bare state dict or a dict holding one under ``state_dict`` or
    ``model_state_dict``.

    Raises:
        ModelError: missing file, not a state dict, or keys/shapes that do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model.checkpoint: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"model.checkpoint: {path} cannot be read safely ({exc})") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict):
        raise ModelError(
            f"model.checkpoint: {path} holds a {type(state).__name__}, not a state dict"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelError(
            f"model.checkpoint: {path} does not fit the model: {' '.join(first[:3])}"
        ) from None
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class BuiltModel:
    """A model ready for the pipeline, with the input shape it expects."""

    model: nn.Module
    input_shape: tuple[int, int, int]
    label: str
    checkpoint: Path | None = None


def _first_conv_channels(model: nn.Module) -> int | None:
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.in_channels if conv is not None else None


def build_model(
    name: str | None = None,
    factory: str | None = None,
    kwargs: dict[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
) -> BuiltModel:
    """Build a registered model (``name``) or a user's (``factory``), load its checkpoint,
    and check that it runs on inputs of ``input_shape``.

    The input shape is, in order: ``input_shape``; the model's own ``input_shape`` attribute;
    for a registered model, its registered shape with the first conv's input channels.

    Raises:
        ModelError: unknown name, bad factory or arguments, bad checkpoint, unknown input
            shape, or a model that does not run on that shape.
    """
    args = dict(kwargs or {})
    if num_classes is not None:
        args["num_classes"] = num_classes
    if name is not None:
        entry = MODELS.get(name)
        model, default_shape, label = create_model(name, **args), entry.input_shape, name
    elif factory is not None:
        build = load_factory(factory)
        try:
            model = call_user_code(f"model.factory {factory!r}", ModelError, build, **args)
        except ModelError:
            raise
        except TypeError as exc:
            raise ModelError(f"model.factory {factory!r}: bad arguments {args} ({exc})") from None
        except (Exception, SystemExit) as exc:
            # User code: whatever it raises (even sys.exit) becomes one error naming it.
            raise ModelError(f"model.factory {factory!r} failed: {exception_line(exc)}") from exc
        default_shape, label = None, factory
    else:
        raise ModelError("model: give a registered `name` or a `factory`")
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"model {label!r}: the factory returned {type(model).__name__}, not a torch.nn.Module"
        )
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is None and default_shape is not None:
        channels = _first_conv_channels(model) or default_shape[0]
        shape = (channels, default_shape[1], default_shape[2])
    if shape is None:
        raise ModelError(f"model {label!r}: set model.input_shape, e.g. [1, 28, 28]")
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    path = Path(checkpoint) if checkpoint else None
    if path is not None:
        load_checkpoint(model, path)
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, *shape))
    except (Exception, SystemExit) as exc:
        raise ModelError(
            f"model {label!r} does not run on inputs of shape {list(shape)}: "
            f"{exception_line(exc)}; set model.input_shape (and the model's kwargs) to what it "
            "expects"
        ) from None
    return BuiltModel(model.train(), shape, label, path)


# ------------------------------------------------------------------------------------ the zoo
@register_model("SmallCNN")
class SmallCNN(nn.Module):
    """conv 1->16 (3x3, pad 1) -> ReLU -> maxpool 2 -> conv 16->32 (3x3, pad 1) -> ReLU
    -> maxpool 2 -> flatten -> linear 32*7*7 -> 10, for 1x28x28 inputs.

    Channel counts are arguments so that a pruned copy is again a ``SmallCNN``;
    ``in_channels`` and ``input_size`` (divisible by 4) adapt it to other image shapes.
    """

    def __init__(
        self,
        conv1_channels: int = 16,
        conv2_channels: int = 32,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 28,
    ) -> None:
        super().__init__()
        for arg, value in (
            ("conv1_channels", conv1_channels),
            ("conv2_channels", conv2_channels),
            ("num_classes", num_classes),
            ("in_channels", in_channels),
        ):
            if value < 1:
                raise ModelError(f"SmallCNN: {arg}={value} must be >= 1")
        if input_size < 4 or input_size % 4:
            raise ModelError(f"SmallCNN: input_size={input_size} must be a multiple of 4")
        self.input_shape = (in_channels, input_size, input_size)
        self.conv1 = nn.Conv2d(in_channels, conv1_channels, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(conv1_channels, conv2_channels, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        spatial = (input_size // 4) ** 2
        self.classifier = nn.Linear(conv2_channels * spatial, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, C, 28, 28) -> (N, c1, 14, 14) -> (N, c2, 7, 7) -> (N, num_classes)
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.classifier(torch.flatten(x, 1))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the input (projected by 1x1 conv-BN when the shape
    changes), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, cout, 3, stride)
        self.relu1 = nn.ReLU()
        self.conv2, self.bn2 = _conv_bn(cout, cout, 3)
        self.shortcut = (
            nn.Sequential(*_conv_bn(cin, cout, 1, stride))
            if stride != 1 or cin != cout
            else nn.Identity()
        )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))  # the residual add


@register_model("TinyResNet")
class TinyResNet(nn.Module):
    """stem conv-BN-ReLU (width) -> maxpool 2 -> BasicBlock(width) -> BasicBlock(2w, stride 2)
    -> BasicBlock(4w, stride 2) -> global average pool -> linear 4w->hidden -> ReLU
    -> linear hidden->classes."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, width: int = 16, hidden: int = 64
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, width, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.block1 = BasicBlock(width, width)
        self.block2 = BasicBlock(width, 2 * width, stride=2)
        self.block3 = BasicBlock(2 * width, 4 * width, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(4 * width, hidden)
        self.relu = nn.ReLU()
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C, 28, 28) -> (N, w, 14, 14) -> (N, 2w, 7, 7) -> (N, 4w, 4, 4) -> (N, classes)
        x = self.block3(self.block2(self.block1(self.stem(x))))
        return self.classifier(self.relu(self.fc1(self.flatten(self.pool(x)))))


class DepthwiseSeparable(nn.Module):
    """depthwise 3x3 (groups = channels) -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.dw, self.dw_bn = _conv_bn(cin, cin, 3, stride, groups=cin)
        self.dw_act = nn.ReLU6()
        self.pw, self.pw_bn = _conv_bn(cin, cout, 1)
        self.pw_act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw_act(self.pw_bn(self.pw(self.dw_act(self.dw_bn(self.dw(x))))))


@register_model("TinyMobileNet")
class TinyMobileNet(nn.Module):
    """stem conv-BN-ReLU6 (width, stride 2) -> separable blocks width->2w (s1) -> 2w->4w (s2)
    -> 4w->4w (s1) -> global average pool -> linear 4w->classes."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, width, 3, 2), nn.ReLU6())
        self.blocks = nn.Sequential(
            DepthwiseSeparable(width, 2 * width),
            DepthwiseSeparable(2 * width, 4 * width, stride=2),
            DepthwiseSeparable(4 * width, 4 * width),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.blocks(self.stem(x)))))


def build_configured_model(cfg: ExperimentConfig) -> BuiltModel:
    """The model the config describes (registered or a user factory, checkpoint loaded)."""
    spec = cfg.model
    return build_model(
        spec.name, spec.factory, spec.kwargs, spec.checkpoint, spec.input_shape, spec.num_classes
    )
