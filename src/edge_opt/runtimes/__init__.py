"""Runtimes: where a candidate runs, one module each behind a registry.

- ``eager`` (``runtimes/eager.py``): the precision-converted PyTorch module as is.
- ``onnxruntime`` (``runtimes/onnxruntime.py``): an ONNX export in an ONNX Runtime session;
  int8 by ONNX Runtime's static quantization.
- ``compiled`` (``runtimes/compiled.py``): ``torch.compile`` with inductor freezing; int8
  through PT2E.
- ``executorch`` (``runtimes/executorch.py``): a ``.pte`` program lowered to ExecuTorch's
  XNNPACK delegate; int8 through PT2E with ``XNNPACKQuantizer``.

Importing this package imports no torch (a device node imports ``runtimes.ort_sessions``
without it); the names below load ``runtimes.build`` on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("edge_opt.runtimes.build"), name)
    raise AttributeError(f"module 'edge_opt.runtimes' has no attribute {name!r}")
