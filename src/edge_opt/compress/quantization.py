"""Precision conversion: fp32, fp16, bf16 and int8 (static post-training quantization).

int8 must really be int8: ``quantize_static_int8`` is the one function that talks to the
quantization backend (today FX graph mode of ``torch.ao.quantization``; it can move to PT2E
without touching callers), and a conversion that yields no quantized module, or whose model
does not run, raises ``QuantizationError``; the sweep records that as a failed row.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from edge_opt.compress.precisions import BYTES_PER_ELEMENT, ENGINES, PRECISIONS
from edge_opt.config.types import this_cpu_engine
from edge_opt.errors import QuantizationError

QUANTIZATION_BACKENDS = tuple(ENGINES.names())
__all__ = [
    "BYTES_PER_ELEMENT",
    "PRECISIONS",
    "QUANTIZATION_BACKENDS",
    "ConvertedModel",
    "convert_precision",
    "is_int8_quantized",
    "quantize_static_int8",
    "quantized_module_names",
]


@dataclass(frozen=True)
class ConvertedModel:
    """A model in one precision and the dtype its inputs must have."""

    model: nn.Module
    precision: str
    input_dtype: torch.dtype
    quantized_engine: str | None = None

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.input_dtype)


Converter = Callable[[nn.Module, Sequence[torch.Tensor], str], ConvertedModel]


def _float_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    return copy.deepcopy(model).to(dtype=dtype).eval()


def to_fp32(model: nn.Module, _calib: Sequence[torch.Tensor], _backend: str) -> ConvertedModel:
    return ConvertedModel(_float_copy(model, torch.float32), "fp32", torch.float32)


def to_fp16(model: nn.Module, _calib: Sequence[torch.Tensor], _backend: str) -> ConvertedModel:
    return ConvertedModel(_float_copy(model, torch.float16), "fp16", torch.float16)


def to_bf16(model: nn.Module, _calib: Sequence[torch.Tensor], _backend: str) -> ConvertedModel:
    return ConvertedModel(_float_copy(model, torch.bfloat16), "bf16", torch.bfloat16)


def to_int8(model: nn.Module, calib: Sequence[torch.Tensor], backend: str) -> ConvertedModel:
    quantized = quantize_static_int8(model, calib, backend)
    return ConvertedModel(quantized, "int8", torch.float32, quantized_engine=backend)


def is_int8_quantized(model: nn.Module) -> bool:
    """True when the model holds at least one quantized (int8-weight) module."""
    return bool(quantized_module_names(model))


def quantized_module_names(model: nn.Module) -> list[str]:
    """Names of the modules whose weights are stored as quantized (int8) tensors."""
    names = []
    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        # Quantized conv/linear expose their packed weight through a ``weight()`` method.
        if callable(weight) and not isinstance(weight, nn.Parameter):
            try:
                if weight().is_quantized:
                    names.append(name)
            except (RuntimeError, TypeError, AttributeError):
                continue
    return names


def quantize_static_int8(
    model: nn.Module, calibration_inputs: Iterable[torch.Tensor], backend: str | None = None
) -> nn.Module:
    """Static post-training int8 quantization (per-channel weights, calibrated activations).

    Args:
        model: float model; it is copied, never modified.
        calibration_inputs: float input batches that set the activation ranges.
        backend: quantized engine, one of ``x86``, ``fbgemm``, ``onednn``, ``qnnpack``;
            None: this CPU's (``x86`` on x86-64, ``qnnpack`` on Arm).

    Returns:
        The converted model; its conv/linear layers hold packed int8 weights.

    Raises:
        QuantizationError: the backend is unknown or unavailable, calibration data is
            missing, or the conversion produced no quantized layer or a model that fails.
    """
    backend = backend or this_cpu_engine()
    if backend not in QUANTIZATION_BACKENDS:
        raise QuantizationError(
            f"quantization_backend: {backend!r} is unknown; "
            f"allowed: {', '.join(QUANTIZATION_BACKENDS)}"
        )
    if backend not in torch.backends.quantized.supported_engines:
        raise QuantizationError(
            f"quantization_backend: {backend!r} is not in this torch build "
            f"(supported: {', '.join(torch.backends.quantized.supported_engines)})"
        )
    if torch.are_deterministic_algorithms_enabled():
        raise QuantizationError(
            "torch.use_deterministic_algorithms(True) is on: quantized kernels have no "
            "deterministic implementation and would fail; turn it off for int8"
        )
    batches = [b.float() for b in calibration_inputs]
    if not batches:
        raise QuantizationError("int8 calibration needs at least one input batch")
    # Imported here: torch.ao.quantization is deprecated in 2.13 and warns on import.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = backend
        float_model = copy.deepcopy(model).float().eval()
        try:
            prepared = prepare_fx(
                float_model, get_default_qconfig_mapping(backend), example_inputs=(batches[0],)
            )
            with torch.inference_mode():
                for batch in batches:
                    prepared(batch)
            quantized = convert_fx(prepared).eval()
            with torch.inference_mode():
                out = quantized(batches[0])
        except Exception as exc:  # any failure of the backend is a failed row, with its reason
            raise QuantizationError(
                f"int8 ({backend}) conversion failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not is_int8_quantized(quantized):
        raise QuantizationError(f"int8 ({backend}) conversion left no quantized layer")
    if not torch.isfinite(out).all():
        raise QuantizationError(f"int8 ({backend}) model produced non-finite outputs")
    return quantized


def convert_precision(
    model: nn.Module,
    precision: str,
    calibration_inputs: Sequence[torch.Tensor] = (),
    backend: str | None = None,
) -> ConvertedModel:
    """Return a new model in ``precision`` (``fp32``, ``fp16``, ``bf16`` or ``int8``).

    Raises:
        QuantizationError: unknown precision or failed int8 conversion.

    Example:
        >>> converted = convert_precision(SmallCNN(), "bf16")  # doctest: +SKIP
        >>> converted.model(converted.prepare_input(x))  # doctest: +SKIP
    """
    converter: Converter = globals()[PRECISIONS.get(precision).converter]
    converted = converter(model, calibration_inputs, backend or this_cpu_engine())
    shape = getattr(model, "input_shape", None)
    if shape is not None and getattr(converted.model, "input_shape", None) is None:
        # FX conversion (int8) builds a GraphModule that drops the model's own attributes;
        # whatever reads the input shape later (tracing for export) needs it.
        converted.model.input_shape = shape
    return converted
