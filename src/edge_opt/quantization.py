"""edge-opt v1's import path for precision conversion (a facade): the code lives in
``edge_opt.compress.quantization`` (the precisions and int8 engines:
``edge_opt.compress.precisions``)."""

from __future__ import annotations

from edge_opt.compress.precisions import (
    ENGINES,
    PrecisionSpec,
    QuantEngine,
)
from edge_opt.compress.quantization import (
    QUANTIZATION_BACKENDS,
    ConvertedModel,
    Converter,
    convert_precision,
    is_int8_quantized,
    quantize_static_int8,
    quantized_module_names,
    to_bf16,
    to_fp16,
    to_fp32,
    to_int8,
)

__all__ = [
    "ConvertedModel",
    "Converter",
    "ENGINES",
    "PrecisionSpec",
    "QUANTIZATION_BACKENDS",
    "QuantEngine",
    "convert_precision",
    "is_int8_quantized",
    "quantize_static_int8",
    "quantized_module_names",
    "to_bf16",
    "to_fp16",
    "to_fp32",
    "to_int8",
]
