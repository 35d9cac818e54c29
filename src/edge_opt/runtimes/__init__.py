"""Runtimes: where a candidate runs, one module each behind a registry.

- ``eager`` (``runtimes/eager.py``): the precision-converted PyTorch module as is.
- ``onnxruntime`` (``runtimes/onnxruntime.py``): an ONNX export in an ONNX Runtime session;
  int8 by ONNX Runtime's static quantization.
- ``compiled`` (``runtimes/compiled.py``): ``torch.compile`` with inductor freezing; int8
  through PT2E.
- ``executorch`` (``runtimes/executorch.py``): a ``.pte`` program lowered to ExecuTorch's
  XNNPACK delegate; int8 through PT2E with ``XNNPACKQuantizer``.

Plugins add runtimes (``runtimes.registry``, ``docs/extending.md``). Importing this package
imports no torch (a device node imports ``runtimes.ort_sessions`` without it); the names below
load their module on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it
_HOMES = {
    "FORMATS": "edge_opt.runtimes.registry",
    "RUNTIMES": "edge_opt.runtimes.registry",
    "DeployableFormat": "edge_opt.runtimes.registry",
    "RuntimeSpec": "edge_opt.runtimes.registry",
    "unsupported_reason": "edge_opt.runtimes.registry",
    "BuildRequest": "edge_opt.runtimes.base",
    "RuntimeModel": "edge_opt.runtimes.base",
    "artifact_name": "edge_opt.runtimes.build",
    "build_runtime": "edge_opt.runtimes.build",
    "OrtOptions": "edge_opt.runtimes.ort_sessions",
    "ort_session": "edge_opt.runtimes.ort_sessions",
    "export_onnx": "edge_opt.runtimes.onnxruntime",
    "quantize_onnx_int8": "edge_opt.runtimes.onnxruntime",
    "pt2e_int8": "edge_opt.runtimes.compiled",
    "convert_precision": "edge_opt.compress.quantization",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'edge_opt.runtimes' has no attribute {name!r}")
