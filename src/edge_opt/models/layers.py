"""Per-layer accounting of a model, modelled from its architecture: MACs, parameter bytes and
activation bytes of every layer (modules by forward hooks, functional ops through torch.fx),
at a batch size and a precision's bytes per element.

Formulas (fixed by the specification, pinned by tests):
- conv MACs = batch x out_channels x out_h x out_w x (in_channels / groups) x k_h x k_w;
  linear MACs = batch x in_features x out_features.
- parameter_bytes = (weight + bias elements) x bytes per element;
  activation_bytes = output elements x bytes per element.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import fx, nn

from edge_opt.models.hooks import run_with_leaf_hooks

LAYER_COLUMNS = [
    "layer",
    "output_elements",
    "parameter_bytes",
    "activation_bytes",
    "macs",
    "kind",
    "flops",
    "flops_note",
]


_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.PReLU,
    nn.Softmax,
)


_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NO_WORK = (nn.Flatten, nn.Identity, nn.Dropout, nn.Unflatten)
_ADD_FUNCTIONS = {operator.add, operator.iadd, torch.add}
_MUL_FUNCTIONS = {operator.mul, operator.imul, torch.mul}
_ACT_FUNCTIONS = {torch.relu, F.relu, F.relu6, F.hardtanh, torch.sigmoid, F.gelu, F.silu}


@dataclass(frozen=True)
class LayerEstimate:
    """One layer (or functional op such as a residual add) at a given batch size."""

    layer: str
    output_elements: int
    parameter_bytes: int
    activation_bytes: int
    macs: int
    kind: str = ""
    flops: int = 0
    flops_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def conv2d_macs(module: nn.Conv2d, output_shape: torch.Size) -> int:
    batch, out_c, out_h, out_w = output_shape
    k_h, k_w = module.kernel_size
    return batch * out_c * out_h * out_w * (module.in_channels // module.groups) * k_h * k_w


def linear_macs(module: nn.Linear, output_shape: torch.Size) -> int:
    rows = int(torch.Size(output_shape).numel()) // module.out_features  # batch (x extra dims)
    return rows * module.in_features * module.out_features


def _parameter_elements(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _module_row(
    name: str, module: nn.Module, inputs: list[torch.Tensor], output: torch.Tensor, bpe: int
) -> LayerEstimate | None:
    """Analyse one leaf module's call; None for modules that do no work (views, dropout)."""
    elements = int(output.numel())
    params = _parameter_elements(module) * bpe
    row = {
        "layer": name,
        "output_elements": elements,
        "parameter_bytes": params,
        "activation_bytes": elements * bpe,
    }
    if isinstance(module, nn.Conv2d):
        macs = conv2d_macs(module, output.shape)
        note = ""
        if module.groups > 1:
            depthwise = module.groups == module.in_channels == module.out_channels
            note = "depthwise" if depthwise else f"grouped (groups={module.groups})"
        return LayerEstimate(**row, macs=macs, kind="conv", flops=2 * macs, flops_note=note)
    if isinstance(module, nn.Linear):
        macs = linear_macs(module, output.shape)
        return LayerEstimate(**row, macs=macs, kind="linear", flops=2 * macs)
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return LayerEstimate(
            **row,
            macs=0,
            kind="batchnorm",
            flops=2 * elements,
            flops_note="scale+shift per element, no MACs; folded into the preceding conv for int8",
        )
    if isinstance(module, _ACTIVATIONS):
        return LayerEstimate(
            **row, macs=0, kind="activation", flops=elements, flops_note="1 op per element, no MACs"
        )
    if isinstance(module, _POOLS):
        in_elements = int(inputs[0].numel()) if inputs else elements
        return LayerEstimate(
            **row,
            macs=0,
            kind="pool",
            flops=in_elements,
            flops_note="1 compare/add per input element, no MACs",
        )
    if isinstance(module, _NO_WORK):
        return None
    return LayerEstimate(
        **row, macs=0, kind="other", flops=0, flops_note=f"{type(module).__name__}: not analysed"
    )


def _function_row(node: fx.Node, output: Any, bpe: int) -> LayerEstimate | None:
    if not isinstance(output, torch.Tensor):
        return None
    target = node.target
    elements = int(output.numel())
    row = {
        "layer": node.name,
        "output_elements": elements,
        "parameter_bytes": 0,
        "activation_bytes": elements * bpe,
        "macs": 0,
    }
    if target in _ADD_FUNCTIONS or target in ("add", "add_"):
        return LayerEstimate(
            **row,
            kind="add",
            flops=elements,
            flops_note="elementwise add (e.g. a residual), no MACs",
        )
    if target in _MUL_FUNCTIONS or target in ("mul", "mul_"):
        return LayerEstimate(**row, kind="mul", flops=elements, flops_note="elementwise multiply")
    if target in _ACT_FUNCTIONS or target in ("relu", "relu_", "sigmoid"):
        return LayerEstimate(
            **row, kind="activation", flops=elements, flops_note="1 op per element, no MACs"
        )
    if target is torch.cat:
        return LayerEstimate(**row, kind="concat", flops=0, flops_note="data movement only")
    return None  # views, reshapes, getattr: no work


class _Recorder(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, bytes_per_element: int) -> None:
        super().__init__(module)
        self.bpe = bytes_per_element
        self.rows: list[LayerEstimate] = []

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if n.op == "call_module":
            module = self.module.get_submodule(str(n.target))
            args = [a for a in self.fetch_args_kwargs_from_env(n)[0] if isinstance(a, torch.Tensor)]
            if isinstance(result, torch.Tensor):
                row = _module_row(str(n.target), module, args, result, self.bpe)
                if row is not None:
                    self.rows.append(row)
        elif n.op in ("call_function", "call_method"):
            row = _function_row(n, result, self.bpe)
            if row is not None:
                self.rows.append(row)
        return result


def _hook_rows(model: nn.Module, example: torch.Tensor, bpe: int) -> list[LayerEstimate]:
    """Fallback for untraceable models: leaf modules only (functional adds are not seen)."""
    names = {module: name for name, module in model.named_modules()}
    rows: list[LayerEstimate] = []

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if isinstance(output, torch.Tensor):
            tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
            row = _module_row(names[module], module, tensors, output, bpe)
            if row is not None:
                rows.append(row)

    run_with_leaf_hooks(model, example, hook)
    return rows


def estimate_layerwise_stats(
    model: nn.Module,
    batch_size: int,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    bytes_per_element: int | None = None,
) -> pd.DataFrame:
    """Per-layer output elements, parameter/activation bytes, MACs and FLOPs of any CNN.

    Every leaf module that does work (conv with any groups/stride/dilation/padding, linear,
    batch norm, pooling, activations) and every functional add/multiply/concat (residual
    adds) is a row, in execution order, named after its module (``conv1``,
    ``block1.conv2``) or graph node (``add``). Shapes come from one forward pass of zeros
    through a float copy (``torch.fx``; models it cannot trace fall back to module hooks, and
    their functional ops are then missing). MACs are counted for conv and linear only (the
    FlopCounterMode convention); ``flops`` and ``flops_note`` cover the rest.

    Args:
        model: a float model (for a quantized candidate, pass its float architecture and
            ``bytes_per_element=1``).
        batch_size: batch the figures are computed for.
        input_shape: (C, H, W) of one input.
        bytes_per_element: bytes per value; default: the model's parameter element size.

    Returns:
        A DataFrame with columns ``layer, output_elements, parameter_bytes, activation_bytes,
        macs, kind, flops, flops_note``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: {batch_size} must be >= 1")
    if bytes_per_element is None:
        first = next(model.parameters(), None)
        bytes_per_element = first.element_size() if first is not None else 4
    float_model = copy.deepcopy(model).float().eval()
    example = torch.zeros(batch_size, *input_shape)
    try:
        traced = fx.symbolic_trace(float_model)
    except Exception:  # data-dependent control flow: module hooks still see the layers
        rows = _hook_rows(float_model, example, bytes_per_element)
    else:
        recorder = _Recorder(traced, bytes_per_element)
        with torch.inference_mode():
            recorder.run(example)
        rows = recorder.rows
    return pd.DataFrame([r.to_dict() for r in rows], columns=LAYER_COLUMNS)
