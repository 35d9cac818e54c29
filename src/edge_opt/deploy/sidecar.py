"""The sidecar of a deployable model, ``models/<id>.json``: everything a device needs to feed
the file and read its answer (input name, shape, dtype, layout, the exact preprocessing, class
names, output meaning, runtime and version, the model file's sha256).

``edge-opt predict`` reads it; so can any script on the device (docs/deploying.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge_opt.infra.artifacts import atomic_write_text
from edge_opt.infra.environment import sha256_file
from edge_opt.runtimes.registry import FORMATS

SIDECAR_VERSION = 1
_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def sidecar_path(model_path: Path) -> Path:
    """``models/<id>.onnx`` -> ``models/<id>.json``; if that name already describes another
    file (an ``export`` in a second format), ``models/<id>.pt.json``."""
    plain = model_path.with_suffix(".json")
    if plain.is_file():
        try:
            owner = json.loads(plain.read_text(encoding="utf-8")).get("model_file")
        except (OSError, ValueError, AttributeError):
            owner = None
        if owner not in (None, model_path.name):
            return model_path.with_name(model_path.name + ".json")
    return plain


def onnx_io_names(path: Path) -> tuple[str, str]:
    """(input name, output name) of an ONNX file's graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return graph.input[0].name, graph.output[0].name


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def build_sidecar(
    model_path: Path,
    candidate_id: str,
    fmt: str,
    precision: str,
    input_shape: tuple[int, int, int] | list[int],
    input_dtype: str,
    data: dict[str, Any],
    measured_as: str,
    static_batch: int | None = None,
) -> dict[str, Any]:
    """The sidecar's content (JSON-ready).

    Args:
        model_path: the written model file (hashed here).
        fmt: ``onnx``, ``pte`` (ExecuTorch) or ``torchscript``.
        input_dtype: what the file takes (``float32``; ``float16``/``bfloat16`` for an eager
            fp16/bf16 TorchScript file).
        data: the run's data description (``DataSplits.describe()`` plus ``num_classes`` and
            ``normalisation``, as in ``run_result.json``).
        measured_as: the runtime the candidate was measured in.
        static_batch: the only batch size the file takes (an ExecuTorch program), if any.
    """
    channels, height, width = (int(d) for d in input_shape)
    deployable = FORMATS.get(fmt)
    if fmt == "onnx":
        input_name, output_name = onnx_io_names(model_path)
    elif fmt == "pte":
        input_name, output_name = "input (positional, method `forward`)", "output"
    else:
        input_name, output_name = "input (positional)", "output"
    runtime = {"name": deployable.runner, "version": _version(deployable.runner_package)}
    batch = deployable.batch
    if static_batch is not None:
        batch = (
            f"static: {static_batch} (feed exactly {static_batch} rows; zero-pad a shorter batch)"
        )
    normalisation = data.get("normalisation", {})
    pre = dict(data.get("preprocessing") or {})
    pre.setdefault("channels", channels)
    pre.setdefault("height", height)
    pre.setdefault("width", width)
    pre.setdefault("mean", normalisation.get("mean"))
    pre.setdefault("std", normalisation.get("std"))
    pre.setdefault("scale", 1 / 255)
    pre.setdefault("formula", "(pixel / 255 - mean) / std, per channel")
    pre.setdefault("color_mode", {1: "L", 3: "RGB"}.get(channels, f"{channels} channels"))
    pre.setdefault("resize", f"bilinear to {height}x{width} when the size differs")
    num_classes = int(data.get("num_classes") or len(data.get("class_names") or []) or 10)
    names = list(data.get("class_names") or [str(i) for i in range(num_classes)])
    return {
        "sidecar_version": SIDECAR_VERSION,
        "candidate_id": candidate_id,
        "model_file": model_path.name,
        "model_sha256": sha256_file(model_path),
        "model_bytes": model_path.stat().st_size,
        "format": fmt,
        "precision": precision,
        "measured_as": measured_as,
        "runtime": runtime,
        "input": {
            "name": input_name,
            "shape": ["N", channels, height, width],
            "batch": batch,
            "dtype": _DTYPES.get(input_dtype, input_dtype),
            "layout": "NCHW",
        },
        "preprocessing": pre,
        "class_names": names,
        "output": {
            "name": output_name,
            "shape": ["N", len(names)],
            "dtype": "float32" if input_dtype == "float32" else input_dtype,
            "meaning": "logits over class_names (in that order); softmax gives probabilities, "
            "argmax the predicted class",
        },
    }


def write_sidecar(model_path: Path, content: dict[str, Any]) -> Path:
    """Write ``content`` next to the model (see ``sidecar_path``); returns the path."""
    path = sidecar_path(model_path)
    return atomic_write_text(path, json.dumps(content, indent=2) + "\n")
