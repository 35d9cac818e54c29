"""The precisions and int8 engines edge-opt knows: the one list of each, with the facts every
name implies. Importing this module imports no torch (the config validates against it).

A precision says how many bytes an element takes (the layer analysis), what dtype its inputs
have, and which function converts a float model to it (``compress.quantization``). An int8
engine (``quantization_backend``) says on which CPU architectures torch ships it.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_opt.errors import QuantizationError
from edge_opt.infra.registry import Registry


@dataclass(frozen=True)
class PrecisionSpec:
    """A numeric precision a candidate can be converted to."""

    name: str
    bytes_per_element: int
    input_dtype: str  # torch dtype (by name) of the model's inputs
    converter: str  # the function of compress.quantization that converts a float model
    description: str


PRECISIONS: Registry[PrecisionSpec] = Registry(
    "precision", QuantizationError, entry_type=PrecisionSpec
)
for _spec in (
    PrecisionSpec("fp32", 4, "float32", "to_fp32", "32-bit float (the reference)"),
    PrecisionSpec("fp16", 2, "float16", "to_fp16", "16-bit float (half)"),
    PrecisionSpec("bf16", 2, "bfloat16", "to_bf16", "bfloat16"),
    # A statically quantized model quantizes its float input itself.
    PrecisionSpec("int8", 1, "float32", "to_int8", "int8 static post-training quantization"),
):
    PRECISIONS.add(_spec)

BYTES_PER_ELEMENT = {name: PRECISIONS.get(name).bytes_per_element for name in PRECISIONS.names()}


@dataclass(frozen=True)
class QuantEngine:
    """A quantized engine of torch (``torch.backends.quantized.engine``)."""

    name: str
    machines: tuple[str, ...]  # ``platform.machine()`` values torch ships it for
    description: str


ENGINES: Registry[QuantEngine] = Registry(
    "quantization backend", QuantizationError, entry_type=QuantEngine
)
_X86 = ("x86_64", "amd64", "AMD64", "i686")
_ARM = ("aarch64", "arm64", "armv7l")
for _engine in (
    QuantEngine("x86", _X86, "FBGEMM or oneDNN, chosen per operator (x86-64 CPUs)"),
    QuantEngine("fbgemm", _X86, "FBGEMM (x86-64 CPUs)"),
    QuantEngine("onednn", _X86, "oneDNN (x86-64 CPUs)"),
    QuantEngine("qnnpack", _ARM + _X86, "QNNPACK (Arm CPUs; also built for x86-64)"),
):
    ENGINES.add(_engine)
