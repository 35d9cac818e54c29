"""Building a candidate for a runtime: the registry's facts and ``build_runtime``.

A runtime is an entry of ``runtimes.registry.RUNTIMES`` (edge-opt's own, or a plugin's); its
builder is imported the first time one of its candidates is built, so heavy libraries (ONNX
Runtime, ExecuTorch) load only when used. A runtime that cannot run a precision says why
(``unsupported_reason``); the sweep records a ``skipped`` row with that reason.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from edge_opt.compress.quantization import convert_precision
from edge_opt.errors import RuntimeBuildError
from edge_opt.runtimes.base import BuildRequest, RuntimeModel
from edge_opt.runtimes.registry import RUNTIMES, unsupported_reason
from edge_opt.runtimes.registry import runtime as runtime_spec

__all__ = [
    "RUNTIMES",
    "BuildRequest",
    "RuntimeModel",
    "artifact_name",
    "build_runtime",
    "rss_probe_refusal",
    "runs_on_device_nodes",
    "unsupported_reason",
]


def artifact_name(runtime: str) -> str | None:
    """The file name a runtime's artifact has in the candidate cache (None: no artifact)."""
    return runtime_spec(runtime).artifact_name


def rss_probe_refusal(runtime: str) -> str | None:
    """Why the peak-RSS probe cannot run a candidate of ``runtime`` (None: it can)."""
    return runtime_spec(runtime).rss_refusal


def runs_on_device_nodes(runtime: str) -> bool:
    """Whether a torch-free device node can time a candidate of ``runtime``."""
    return runtime_spec(runtime).device_node


def build_runtime(
    runtime: str,
    float_model: nn.Module,
    precision: str,
    calibration: Sequence[torch.Tensor],
    example: torch.Tensor,
    threads: int = 1,
    backend: str | None = None,
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
        backend: quantized engine of eager int8 (None: this CPU's).
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
    entry = runtime_spec(runtime)
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
    built: RuntimeModel = entry.load_builder()(request)
    built.input_shape = tuple(int(d) for d in example.shape[1:])  # what the file is traced at
    return built
