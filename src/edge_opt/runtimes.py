"""Runtimes: where a candidate runs. ``eager`` PyTorch, ``onnxruntime`` or ``compiled``.

- ``eager``: the precision-converted module as is (int8: FX static PTQ).
- ``onnxruntime``: the float model exported to ONNX (``torch.onnx.export(dynamo=True)``, dynamic
  batch dimension, one self-contained file); int8 by ONNX Runtime's static quantization (QDQ,
  per-channel int8 weights, uint8 activations, calibrated on the same batches). Its CPU provider
  has few fp16/bf16 kernels, so those precisions are skipped, with the reason.
- ``compiled``: ``torch.compile`` with inductor freezing, static shapes (one compilation per
  batch size, counted in the candidate's preparation time); int8 through PT2E with torchao's
  x86 inductor quantizer.

A runtime that cannot run a precision says why (``unsupported_reason``); the sweep records a
``skipped`` row with that reason instead of failing.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_opt.errors import QuantizationError, RuntimeBuildError
from edge_opt.quantization import ConvertedModel, convert_precision

RUNTIMES = ("eager", "onnxruntime", "compiled")
_UNSUPPORTED = {
    ("onnxruntime", "fp16"): "ONNX Runtime's CPU execution provider has few fp16 kernels",
    ("onnxruntime", "bf16"): "ONNX Runtime's CPU execution provider has no bf16 kernels",
}


def unsupported_reason(runtime: str, precision: str) -> str | None:
    """Why ``runtime`` cannot run ``precision``, or None when it can."""
    if runtime not in RUNTIMES:
        return f"runtime {runtime!r} is unknown; allowed: {', '.join(RUNTIMES)}"
    return _UNSUPPORTED.get((runtime, precision))


@dataclass
class RuntimeModel:
    """A candidate ready to run: ``predict`` for evaluation, ``timed_call`` for the harness."""

    runtime: str
    precision: str
    predict: Callable[[torch.Tensor], torch.Tensor]  # float32 batch in, float32 logits out
    timed_call: Callable[[torch.Tensor], Callable[[], object]]  # prepares inputs outside timing
    size_bytes: int  # what would be deployed: state dict, ONNX file
    eager: ConvertedModel  # the eager equivalent (activation liveness, RSS probe)
    artifact: Path | None = None  # the exported file, for onnxruntime

    def fresh_instance(self, threads: int) -> RuntimeModel | None:
        """An independently built twin (new ONNX Runtime session, new copy of the module) to
        time beside this one; None where building one is too costly (``compiled``)."""
        if self.runtime == "eager":
            return _eager(replace(self.eager, model=copy.deepcopy(self.eager.model)))
        if self.runtime == "onnxruntime" and self.artifact is not None:
            return _ort_model(self.artifact, threads, self.eager)
        return None

    def save(self, path: Path) -> Path:
        """Write the deployable artifact (ONNX file, or TorchScript for eager)."""
        # Written aside and renamed: a full disk or a file-size limit leaves no truncated file.
        from edge_opt.artifacts import atomic_write_bytes

        if self.artifact is not None:
            return atomic_write_bytes(path, self.artifact.read_bytes())
        example = self.eager.prepare_input(torch.zeros(1, *_input_shape(self.eager.model)))
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(self.eager.model, example, check_trace=False), buffer)
        return atomic_write_bytes(path, buffer.getvalue())


def _input_shape(model: nn.Module) -> tuple[int, ...]:
    return tuple(getattr(model, "input_shape", (1, 28, 28)))


# --------------------------------------------------------------------------------- eager
def _eager(converted: ConvertedModel) -> RuntimeModel:
    model = converted.model.eval()

    def predict(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(converted.prepare_input(x)).float()

    def timed_call(x: torch.Tensor) -> Callable[[], object]:
        example = converted.prepare_input(x)
        return lambda: model(example)

    from edge_opt.metrics import serialized_size_bytes

    return RuntimeModel(
        "eager", converted.precision, predict, timed_call, serialized_size_bytes(model), converted
    )


# ---------------------------------------------------------------------------- onnxruntime
def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Export a float model to one self-contained ONNX file with a dynamic batch dimension."""
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                copy.deepcopy(model).float().eval(),
                (example.float(),),
                str(path),
                dynamo=True,
                external_data=False,
                verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},),
            )
    except Exception as exc:
        raise RuntimeBuildError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    finally:
        quiet.setLevel(level)
    return path


def quantize_onnx_int8(
    fp32_path: Path, int8_path: Path, input_name: str, calibration: Sequence[torch.Tensor]
) -> Path:
    """ONNX Runtime static quantization: QDQ, per-channel int8 weights, uint8 activations."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{input_name: b.float().numpy()} for b in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    try:
        quantize_static(
            str(fp32_path),
            str(int8_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    except Exception as exc:
        raise QuantizationError(f"ONNX Runtime int8 quantization failed: {exc}") from exc
    return int8_path


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # the same thread budget as torch's timing
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnxruntime(
    float_model: nn.Module,
    converted: ConvertedModel,
    calibration: Sequence[torch.Tensor],
    example: torch.Tensor,
    threads: int,
    workdir: Path,
    existing: Path | None = None,
) -> RuntimeModel:
    if existing is not None:  # built by an earlier run (the resume cache): load, not export
        path = existing
    else:
        path = export_onnx(float_model, example, workdir / "model_fp32.onnx")
        if converted.precision == "int8":
            name = ort_session(path, 1).get_inputs()[0].name
            path = quantize_onnx_int8(path, workdir / "model_int8.onnx", name, calibration)
    return _ort_model(path, threads, converted)


def _ort_model(path: Path, threads: int, converted: ConvertedModel) -> RuntimeModel:
    session = ort_session(path, threads)
    name = session.get_inputs()[0].name

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {name: x.float().numpy()})[0])

    def timed_call(x: torch.Tensor) -> Callable[[], object]:
        feed = {name: np.ascontiguousarray(x.float().numpy())}
        return lambda: session.run(None, feed)

    return RuntimeModel(
        "onnxruntime",
        converted.precision,
        predict,
        timed_call,
        os.path.getsize(path),
        converted,
        artifact=path,
    )


# ------------------------------------------------------------------------------- compiled
def pt2e_int8(
    model: nn.Module, calibration: Sequence[torch.Tensor], example: torch.Tensor
) -> nn.Module:
    """PT2E static int8 with torchao's x86 inductor quantizer (fast only under compile)."""
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except ImportError as exc:
        raise QuantizationError(f"compiled int8 needs torchao ({exc})") from None
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    # torch.export specialises a dimension of size 1: trace with a batch of at least 2 so that
    # the batch stays dynamic (one exported graph for every batch size).
    traced = example.float().expand(max(2, example.shape[0]), *example.shape[1:]).contiguous()
    try:
        dims = ({0: torch.export.Dim("batch", min=1, max=65536)},)
        exported = torch.export.export(
            copy.deepcopy(model).float().eval(), (traced,), dynamic_shapes=dims
        ).module()
        prepared = prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for batch in calibration:
                prepared(batch.float())
        return convert_pt2e(prepared)
    except Exception as exc:
        raise QuantizationError(f"PT2E int8 failed: {type(exc).__name__}: {exc}") from exc


def _compiled(
    float_model: nn.Module,
    converted: ConvertedModel,
    calibration: Sequence[torch.Tensor],
    example: torch.Tensor,
) -> RuntimeModel:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # constant-fold weights into the compiled graph
    source = (
        pt2e_int8(float_model, calibration, example)
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

    from edge_opt.metrics import serialized_size_bytes

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
        runtime: ``eager``, ``onnxruntime`` or ``compiled``.
        float_model: the pruned float model (not modified).
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        calibration: float input batches for int8.
        example: one float input batch (export and tracing).
        threads: intra-op threads of the runtime (ONNX Runtime's are set here).
        backend: quantized engine of eager int8.
        workdir: where exported files go (a temporary directory by default).
        artifact: an ONNX file this candidate was already exported to (onnxruntime only):
            loaded instead of exporting again.

    Raises:
        EdgeOptError: unsupported combination, failed export, conversion or compilation.
    """
    reason = unsupported_reason(runtime, precision)
    if reason is not None:
        raise RuntimeBuildError(reason)
    converted = convert_precision(float_model, precision, calibration, backend)
    if runtime == "eager":
        return _eager(converted)
    if runtime == "onnxruntime":
        folder = workdir or Path(tempfile.mkdtemp(prefix="edge-opt-onnx-"))
        folder.mkdir(parents=True, exist_ok=True)
        return _onnxruntime(float_model, converted, calibration, example, threads, folder, artifact)
    return _compiled(float_model, converted, calibration, example)
