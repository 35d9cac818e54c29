"""``compiled``: ``torch.compile`` with inductor freezing, static shapes (one compilation per
batch size, counted in the candidate's preparation time); int8 through PT2E with torchao's x86
inductor quantizer. No twin is built for timing: a second compilation would cost seconds."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from edge_opt.errors import QuantizationError
from edge_opt.runtimes.base import BuildRequest, RuntimeModel


def pt2e_int8(
    model: nn.Module, calibration: Sequence[torch.Tensor], example: torch.Tensor
) -> nn.Module:
    """PT2E static int8 with torchao's x86 inductor quantizer (fast only under compile)."""
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    except ImportError as exc:
        raise QuantizationError(f"compiled int8 needs torchao ({exc})") from None
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    return quantize_pt2e(model, quantizer, calibration, example, "PT2E int8")


def quantize_pt2e(
    model: nn.Module,
    quantizer: object,
    calibration: Sequence[torch.Tensor],
    example: torch.Tensor,
    what: str,
) -> nn.Module:
    """Export ``model`` with a dynamic batch, insert ``quantizer``'s observers, calibrate on
    ``calibration`` and convert (torchao's PT2E flow); ``what`` names the step in errors."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as exc:
        raise QuantizationError(f"{what} needs torchao ({exc})") from None
    # torch.export specialises a dimension of size 1: trace with a batch of at least 2 so that
    # the batch stays dynamic (one exported graph for every batch size).
    traced = example.float().expand(max(2, example.shape[0]), *example.shape[1:]).contiguous()
    try:
        dims = ({0: torch.export.Dim("batch", min=1, max=65536)},)
        exported = torch.export.export(
            copy.deepcopy(model).float().eval(), (traced,), dynamic_shapes=dims
        ).module()
        prepared = prepare_pt2e(exported, quantizer)  # type: ignore[arg-type]
        with torch.no_grad():
            for batch in calibration:
                prepared(batch.float())
        return convert_pt2e(prepared)
    except Exception as exc:
        raise QuantizationError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def build_compiled(request: BuildRequest) -> RuntimeModel:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold weights into the compiled graph
    converted = request.converted
    source = (
        pt2e_int8(request.float_model, request.calibration, request.example)
        if converted.precision == "int8"
        else converted.model
    )
    compiled = torch.compile(source, dynamic=False)
    dtype = converted.input_dtype

    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return compiled(x.to(dtype)).float()

    def timed_call(x: torch.Tensor) -> Callable[[], object]:
        example_ = x.to(dtype)
        return lambda: compiled(example_)

    from edge_opt.runtimes.base import serialized_size_bytes

    # The size is that of the module that gets compiled: PT2E int8 graphs keep fp32 weights
    # beside the quantized ones, so they are larger than the eager int8 state dict.
    return RuntimeModel(
        "compiled",
        converted.precision,
        predict,
        timed_call,
        serialized_size_bytes(source),
        converted,
    )
