"""Building a candidate for a runtime: the registry lookups and ``build_runtime``.

- ``eager`` (``runtimes/eager.py``): the precision-converted PyTorch module as is.
- ``onnxruntime`` (``runtimes/onnxruntime.py``): an ONNX export in an ONNX Runtime session;
  int8 by ONNX Runtime's static quantization.
- ``compiled`` (``runtimes/compiled.py``): ``torch.compile`` with inductor freezing; int8
  through PT2E.
- ``executorch`` (``runtimes/executorch.py``): a ``.pte`` program lowered to ExecuTorch's
  XNNPACK delegate; int8 through PT2E with ``XNNPACKQuantizer``.

A runtime registers its builder with ``@register_runtime`` (a second use of a name is an
error). A runtime that cannot run a precision says why (``unsupported_reason``); the sweep
records a ``skipped`` row with that reason instead of failing. Heavy libraries (ONNX Runtime,
ExecuTorch) are imported only when a candidate of theirs is built.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from edge_opt.compress.quantization import convert_precision
from edge_opt.errors import RuntimeBuildError
from edge_opt.runtimes import compiled, eager, executorch, onnxruntime  # noqa: F401 (register)
from edge_opt.runtimes.base import (
    FORMATS_BY_SUFFIX,
    RUNTIME_REGISTRY,
    BuildRequest,
    RuntimeEntry,
    RuntimeModel,
    register_runtime,
)
from edge_opt.runtimes.compiled import pt2e_int8
from edge_opt.runtimes.onnxruntime import export_onnx, quantize_onnx_int8
from edge_opt.runtimes.ort_sessions import OrtOptions, ort_session

RUNTIMES = tuple(RUNTIME_REGISTRY.names())

__all__ = [
    "FORMATS_BY_SUFFIX",
    "RUNTIMES",
    "RUNTIME_REGISTRY",
    "BuildRequest",
    "OrtOptions",
    "RuntimeEntry",
    "RuntimeModel",
    "artifact_name",
    "build_runtime",
    "convert_precision",
    "export_onnx",
    "ort_session",
    "pt2e_int8",
    "quantize_onnx_int8",
    "register_runtime",
    "unsupported_reason",
]


def unsupported_reason(runtime: str, precision: str) -> str | None:
    """Why ``runtime`` cannot run ``precision``, or None when it can."""
    if runtime not in RUNTIME_REGISTRY:
        return f"runtime {runtime!r} is unknown; allowed: {', '.join(RUNTIME_REGISTRY.names())}"
    return RUNTIME_REGISTRY.get(runtime).unsupported.get(precision)


def artifact_name(runtime: str) -> str | None:
    """The file name a runtime's artifact has in the candidate cache (None: no artifact)."""
    return RUNTIME_REGISTRY.get(runtime).artifact_name


def rss_probe_refusal(runtime: str) -> str | None:
    """Why the peak-RSS probe cannot run a candidate of ``runtime`` (None: it can)."""
    return RUNTIME_REGISTRY.get(runtime).rss_refusal


def runs_on_device_nodes(runtime: str) -> bool:
    """Whether a torch-free device node can time a candidate of ``runtime``."""
    return RUNTIME_REGISTRY.get(runtime).device_node


def build_runtime(
    runtime: str,
    float_model: nn.Module,
    precision: str,
    calibration: Sequence[torch.Tensor],
    example: torch.Tensor,
    threads: int = 1,
    backend: str = "x86",
    workdir: Path | None = None,
    *,
    artifact: Path | None = None,
) -> RuntimeModel:
    """Build ``float_model`` in ``precision`` for ``runtime``.

    Args:
        runtime: a registered runtime (``eager``, ``onnxruntime``, ``compiled``, ``executorch``).
        float_model: the pruned float model (not modified).
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        calibration: float input batches for int8.
        example: one float input batch at the deployment batch (export and tracing).
        threads: intra-op threads of the runtime (ONNX Runtime's and ExecuTorch's are set here).
        backend: quantized engine of eager int8.
        workdir: where exported files go (a temporary directory by default).
        artifact: a file this candidate was already exported to (a runtime with an artifact:
            ``.onnx``, ``.pte``): loaded instead of exporting again.

    Raises:
        EdgeOptError: unsupported combination, failed export, conversion or compilation.

    Example:
        >>> built = build_runtime("executorch", model, "int8", batches, x[:1])  # doctest: +SKIP
        >>> built.artifact.suffix, built.size_bytes  # doctest: +SKIP
        ('.pte', 16904)
    """
    reason = unsupported_reason(runtime, precision)
    if reason is not None:
        raise RuntimeBuildError(reason)
    entry = RUNTIME_REGISTRY.get(runtime)
    converted = convert_precision(float_model, precision, calibration, backend)
    folder = workdir
    if entry.artifact_suffix is not None:
        folder = workdir or Path(tempfile.mkdtemp(prefix=f"edge-opt-{runtime}-"))
        folder.mkdir(parents=True, exist_ok=True)
    request = BuildRequest(
        float_model,
        converted,
        calibration,
        example,
        threads,
        folder or Path(tempfile.gettempdir()),
        artifact,
    )
    return entry.build(request)
