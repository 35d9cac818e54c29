"""``onnxruntime``: the float model exported to ONNX (``torch.onnx.export(dynamo=True)``,
dynamic batch dimension, one self-contained file); int8 by ONNX Runtime's static quantization
(QDQ, per-channel int8 weights, uint8 activations, calibrated on the same batches). Its CPU
provider has few fp16/bf16 kernels, so those precisions are skipped, with the reason.

Sessions and the timed call come from ``edge_opt.runtimes.ort_sessions`` (shared with the device's
measure task); ``OrtOptions`` defaults are the choices ``benchmarks/runtime_options.py``
measured (docs/runtimes.md, "Runtime options").
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from edge_opt.compress.quantization import ConvertedModel
from edge_opt.errors import QuantizationError, RuntimeBuildError
from edge_opt.runtimes.base import BuildRequest, RuntimeModel
from edge_opt.runtimes.ort_sessions import OrtOptions, bound_call, ort_session

# The fp32 export of each float model this process exported lately (content key -> file): the
# int8 candidate of a pruning level quantizes the very file its fp32 sibling exported, instead
# of exporting the same model again (an export takes about a second).
_RECENT_EXPORTS: OrderedDict[str, Path] = OrderedDict()
_RECENT_LIMIT = 8


def _export_key(model: nn.Module, example: torch.Tensor) -> str:
    from edge_opt.infra.cache import sha256_bytes, state_dict_bytes

    structure = (
        f"{type(model).__module__}.{type(model).__qualname__}\n{model}\n{tuple(example.shape)}"
    )
    return sha256_bytes(structure.encode() + state_dict_bytes(model))


def export_onnx_once(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """``export_onnx``, or a copy of the file this process exported for the same model."""
    key = _export_key(model, example)
    earlier = _RECENT_EXPORTS.get(key)
    if earlier is not None and earlier.is_file():
        shutil.copyfile(earlier, path)
        return path
    export_onnx(model, example, path)
    _RECENT_EXPORTS[key] = path
    while len(_RECENT_EXPORTS) > _RECENT_LIMIT:
        _RECENT_EXPORTS.popitem(last=False)
    return path


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Export a float model to one self-contained ONNX file with a dynamic batch dimension."""
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _torchlib_registry_once():
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


# Built torchlib registries, per opset: see _torchlib_registry_once.
_REGISTRIES: dict[int, Any] = {}


@contextmanager
def _torchlib_registry_once() -> Iterator[None]:
    """Within this block, the ONNX exporter's operator registry is built once per opset and
    process, and each export gets its own copy of the mapping (nothing one export registers
    reaches the next).

    torch 2.13's exporter rebuilds that registry on every export, parsing the source of ~500
    torchlib functions each time: 0.5-1 s of every export after the first (measured; the
    exported files are byte-identical, tests/test_runtimes.py). With a torch whose exporter
    lacks this internal, the exporter runs as it is.
    """
    try:
        from torch.onnx._internal.exporter import _registration

        registry = _registration.ONNXRegistry
        original = registry.__dict__["from_torchlib"]
        build = original.__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def from_torchlib(cls: type, opset_version: int = _registration._constants.TORCHLIB_OPSET):
        built = _REGISTRIES.get(opset_version)
        if built is None:
            built = _REGISTRIES[opset_version] = build(cls, opset_version=opset_version)
        fresh = cls()
        fresh._opset_version = built._opset_version
        fresh.functions = {op: list(metas) for op, metas in built.functions.items()}
        return fresh

    registry.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        registry.from_torchlib = original


def quantize_onnx_int8(
    fp32_path: Path,
    int8_path: Path,
    input_name: str,
    calibration: Sequence[torch.Tensor],
    *,
    quant_format: Literal["qdq", "qoperator"] = "qdq",
    per_channel: bool = True,
) -> Path:
    """ONNX Runtime static quantization: int8 weights (per channel by default), uint8
    activations, QDQ nodes (or QOperator's fused QLinear* operators)."""
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

    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    try:
        quantize_static(
            str(fp32_path),
            str(int8_path),
            Reader(),
            quant_format=formats[quant_format],
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    except Exception as exc:
        raise QuantizationError(f"ONNX Runtime int8 quantization failed: {exc}") from exc
    return int8_path


class SessionSlot:
    """One candidate's ONNX Runtime session, loaded when first used and dropped by ``release``.

    A session's CPU arena keeps the buffers of the largest batch it ran until the session
    goes; a run holds a session per ONNX Runtime candidate from its evaluation to the end
    (8 in the default config, 33 MiB each after evaluation at batch 128). Dropping them between
    phases frees that memory; the next call loads the same file with the same options again
    (about 10 ms), and gives the same outputs."""

    def __init__(self, path: Path, threads: int, options: OrtOptions | None) -> None:
        self.path, self.threads, self.options = path, threads, options
        self._session: Any = None
        self._lock = threading.Lock()  # evaluation predicts on several threads at once

    def get(self) -> Any:
        with self._lock:
            if self._session is None:
                self._session = ort_session(self.path, self.threads, self.options)
            return self._session

    def release(self) -> None:
        """Drop the session (a timed call bound to it keeps it until that call goes)."""
        with self._lock:
            self._session = None


def ort_model(
    path: Path,
    threads: int,
    converted: ConvertedModel,
    options: OrtOptions | None = None,
    runtime: str = "onnxruntime",
) -> RuntimeModel:
    """Load ``path`` in a new session (``options``: edge-opt's defaults); its twin is another
    new session of the same file. ``runtime`` names the runtime the model is measured as (a
    plugin's ONNX Runtime variant passes its own name and options). ``release_buffers`` drops
    the session; the next call loads a new one (``SessionSlot``)."""
    slot = SessionSlot(path, threads, options)
    name = slot.get().get_inputs()[0].name

    def predict(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(slot.get().run(None, {name: x.float().numpy()})[0])

    def timed_call(x: torch.Tensor) -> Callable[[], object]:
        return bound_call(slot.get(), np.ascontiguousarray(x.float().numpy()))

    return RuntimeModel(
        runtime,
        converted.precision,
        predict,
        timed_call,
        os.path.getsize(path),
        converted,
        artifact=path,
        reload=lambda n: ort_model(path, n, converted, options, runtime),
        concurrent_predict=True,  # InferenceSession.run is thread-safe
        release=slot.release,
    )


def onnx_artifact(request: BuildRequest) -> Path:
    """The candidate's ONNX file: the cached one (``--resume``), or the float model exported
    (once per level in this process) and, for int8, quantized by ONNX Runtime (static QDQ)."""
    if request.artifact is not None:
        return request.artifact
    path = export_onnx_once(
        request.float_model, request.example, request.workdir / "model_fp32.onnx"
    )
    if request.precision == "int8":
        name = ort_session(path, 1).get_inputs()[0].name
        path = quantize_onnx_int8(
            path, request.workdir / "model_int8.onnx", name, request.calibration
        )
    return path


def build_onnxruntime(request: BuildRequest) -> RuntimeModel:
    """The ``onnxruntime`` runtime's builder (``runtimes.registry``)."""
    return ort_model(onnx_artifact(request), request.threads, request.converted)
