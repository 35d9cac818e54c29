"""``onnxruntime-basic``: edge-opt's ONNX export, run in an ONNX Runtime session with basic
graph optimisations only and no spinning threads (what a device that must share its cores
would use). The spec is imported without torch; the builder runs only when a candidate of this
runtime is built."""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge_opt.runtimes.registry import RuntimeSpec

if TYPE_CHECKING:
    from edge_opt.runtimes.base import BuildRequest, RuntimeModel

NAME = "onnxruntime-basic"

SPEC = RuntimeSpec(
    name=NAME,
    builder="edge_opt_example_plugin.runtime:build",
    description="ONNX Runtime with basic graph optimisations and no spinning (example plugin)",
    unsupported={
        "fp16": "ONNX Runtime's CPU execution provider has few fp16 kernels",
        "bf16": "ONNX Runtime's CPU execution provider has no bf16 kernels",
    },
    artifact_suffix=".onnx",
    export_format="onnx",
    int8_method="ONNX Runtime's QDQ quantizer",
    # A device node times with edge-opt's default session options, not these: leave it off.
    device_node=False,
    marker="P",
    svg_shape="square",
    # The libraries it runs on, and the plugin itself: a new version of either keys its
    # cached candidates anew.
    packages=("onnx", "onnxruntime", "onnxscript", "edge-opt-example-plugin"),
)


def build(request: BuildRequest) -> RuntimeModel:
    """The candidate as an ONNX file (exported, or loaded from the cache) in a session with
    this runtime's options."""
    from edge_opt.runtimes.onnxruntime import onnx_artifact, ort_model
    from edge_opt.runtimes.ort_sessions import OrtOptions

    options = OrtOptions(optimization_level="basic", allow_spinning=False)
    return ort_model(onnx_artifact(request), request.threads, request.converted, options, NAME)
