"""The seed's import path for precision conversion (a facade): the code lives in
``edge_opt.compress.quantization``."""

from __future__ import annotations

from edge_opt.compress.quantization import (
    BYTES_PER_ELEMENT,
    PRECISIONS,
    QUANTIZATION_BACKENDS,
    ConvertedModel,
    Converter,
    convert_precision,
    is_int8_quantized,
    quantize_static_int8,
    quantized_module_names,
    register_precision,
)

__all__ = [
    "BYTES_PER_ELEMENT",
    "ConvertedModel",
    "Converter",
    "PRECISIONS",
    "QUANTIZATION_BACKENDS",
    "convert_precision",
    "is_int8_quantized",
    "quantize_static_int8",
    "quantized_module_names",
    "register_precision",
]
