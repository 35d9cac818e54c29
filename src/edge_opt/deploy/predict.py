"""``edge-opt predict MODEL IMAGE...``: run an exported model on image files, preprocessed
exactly as its sidecar says, and return class and probability per image.

This is what a user runs on the device to check a deployable file. For ``.onnx`` it needs
only numpy, Pillow and onnxruntime (torch is not imported); a TorchScript ``.pt`` needs torch.
Every input is bounded before it is read: the sidecar (a regular file of at most
``MAX_SIDECAR_BYTES``; an input of 1 or 3 channels and at most ``MAX_INPUT_SIDE`` pixels a
side) and each image (see ``edge_opt.data.imaging``: regular files only, size limits).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.data.formats import base
from edge_opt.data.imaging import ImageDecodeError, decode_image, normalise
from edge_opt.errors import DataError, EdgeOptError
from edge_opt.infra.text import name_problem

PREDICT_CHUNK = 256  # images decoded and run at a time
SIDECAR_KEYS = ("model_sha256", "format", "input", "preprocessing", "class_names")


@dataclass(frozen=True)
class Prediction:
    """The top class of one image and its softmax probability."""

    image: str
    class_index: int
    class_name: str
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_sidecar(model: Path) -> Path:
    """The model's sidecar next to it: ``<id>.json`` (or ``<file>.json`` when that one is
    another model's); a renamed pair (``mine.onnx`` + ``mine.json``) is found by the sha256
    the sidecar records.

    Raises:
        EdgeOptError: none there, or the ones there describe other files (named).
    """
    there = [
        p
        for p in (model.with_suffix(".json"), model.with_name(model.name + ".json"))
        if p.is_file()
    ]
    owners = {path: _sidecar_field(path, "model_file") for path in there}
    for path in there:
        if owners[path] in (None, model.name):
            return path
    digest = _file_sha256(model) if there and model.is_file() else None
    for path in there:
        if digest is not None and _sidecar_field(path, "model_sha256") == digest:
            return path  # renamed with its model: the content says they belong together
    if there:
        raise EdgeOptError(
            f"{model}: {there[0].name} next to it describes {owners[there[0]]!r}, another file "
            "(its sha256 differs); pass this model's sidecar with --sidecar FILE"
        )
    raise EdgeOptError(
        f"{model}: no sidecar {model.with_suffix('.json').name} next to it; copy the model's "
        "sidecar from the run's models/ folder, or pass --sidecar FILE"
    )


def _sidecar_field(path: Path, key: str) -> Any:
    try:
        return json.loads(_sidecar_bytes(path)).get(key)
    except (OSError, ValueError, AttributeError):  # DataError is a ValueError
        return None


def _file_sha256(path: Path) -> str:
    content = hashlib.sha256()
    with path.open("rb") as fh:  # in 1 MiB chunks: a model may be large
        while chunk := fh.read(1 << 20):
            content.update(chunk)
    return content.hexdigest()


def read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar's JSON, checked for the keys predict needs.

    Raises:
        EdgeOptError: unreadable, not a regular file, past ``MAX_SIDECAR_BYTES``, not JSON,
            missing keys, or an input past the limits (naming the file and the field).
    """
    try:
        data = json.loads(_sidecar_bytes(path).decode("utf-8"))
    except DataError:
        raise
    except OSError as exc:
        raise EdgeOptError(f"{path}: cannot read the sidecar ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgeOptError(
            f"{path}: the sidecar is not JSON ({exc}); export the model again"
        ) from None
    missing = [k for k in SIDECAR_KEYS if not isinstance(data, dict) or k not in data]
    if missing:
        raise EdgeOptError(
            f"{path}: not an edge-opt model sidecar (missing {', '.join(missing)}); export the "
            "model again (edge-opt export RUN_DIR)"
        )
    problem = _preprocessing_problem(data)
    if problem:
        raise EdgeOptError(f"{path}: {problem}; export the model again (edge-opt export RUN_DIR)")
    return data


def _sidecar_bytes(path: Path) -> bytes:
    """The sidecar file's bytes: a regular file (a FIFO would block) of at most 16 MiB."""
    return base.read_regular_file(path, base.MAX_SIDECAR_BYTES, "MAX_SIDECAR_BYTES")


def _described_model(sidecar: Path) -> str | None:
    try:
        name = json.loads(_sidecar_bytes(sidecar)).get("model_file")
    except (OSError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


def _preprocessing_problem(data: dict[str, Any]) -> str | None:
    """What makes the sidecar's preprocessing or class names unusable (None: nothing)."""
    pre = data["preprocessing"]
    try:
        channels = int(pre["channels"])
        sizes = (int(pre["height"]), int(pre["width"]))
        mean = [float(v) for v in (pre["mean"] if isinstance(pre["mean"], list) else [pre["mean"]])]
        std = [float(v) for v in (pre["std"] if isinstance(pre["std"], list) else [pre["std"]])]
    except (KeyError, TypeError, ValueError) as exc:
        return f"preprocessing is malformed ({type(exc).__name__}: {exc})"
    if channels not in (1, 3) or min(sizes) < 1:
        return f"preprocessing: channels {channels} and size {sizes} cannot describe an image"
    problem = _size_problem(data, channels, sizes)
    if problem:
        return problem
    for name, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            return f"preprocessing.{name} has {len(values)} values for {channels} channel(s)"
        if not all(math.isfinite(v) for v in values):
            return f"preprocessing.{name} {values} is not finite"
    if min(std) <= 0:
        return f"preprocessing.std {std} must be > 0 (it divides every pixel)"
    names = data["class_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return "class_names must be a list of strings"
    if len(set(names)) != len(names):
        return "class_names repeats a name"
    for i, name in enumerate(names):
        problem = name_problem(name)
        if problem is not None:  # a newline or tab would forge lines of predict's output
            return f"class_names.{i} ({name[:60]!r}): {problem}"
    return None


def _size_problem(data: dict[str, Any], channels: int, sizes: tuple[int, int]) -> str | None:
    """An input past ``MAX_INPUT_SIDE`` (an image is resized to it before anything checks
    it), or an ``input.shape`` (when given) other than the preprocessing's [N, C, H, W]."""
    limit = base.MAX_INPUT_SIDE
    for field, side in zip(("height", "width"), sizes, strict=True):
        if side > limit:
            return (
                f"preprocessing.{field} is {side}, more than the {limit} pixels a side predict "
                "resizes images to (MAX_INPUT_SIDE)"
            )
    shape = data["input"].get("shape") if isinstance(data["input"], dict) else None
    if shape is not None and (not isinstance(shape, list) or shape[1:] != [channels, *sizes]):
        return (
            f"input.shape {shape} is not [N, {channels}, {sizes[0]}, {sizes[1]}] (the "
            "preprocessing's channels, height and width)"
        )
    return None


def _check_model(model: Path, sidecar: dict[str, Any], sidecar_file: Path) -> None:
    digest = _file_sha256(model)
    if digest != sidecar["model_sha256"]:
        raise EdgeOptError(
            f"{model}: sha256 {digest[:16]}... differs from {sidecar_file.name}'s "
            f"{str(sidecar['model_sha256'])[:16]}...; the sidecar describes another file: use "
            "the sidecar exported with this model"
        )


def preprocess(images: Sequence[str | Path], sidecar: dict[str, Any]) -> np.ndarray:
    """Decode, convert, resize and normalise image files as the sidecar says: (N, C, H, W).

    Raises:
        EdgeOptError: an image that cannot be read, is not a regular file or is past a limit
            (naming it).
    """
    pre = sidecar["preprocessing"]
    channels, size = int(pre["channels"]), (int(pre["height"]), int(pre["width"]))
    mean = pre["mean"] if isinstance(pre["mean"], list) else [pre["mean"]]
    std = pre["std"] if isinstance(pre["std"], list) else [pre["std"]]
    try:
        pixels = np.stack([decode_image(p, channels, size) for p in images])
    except ImageDecodeError as exc:
        raise EdgeOptError(str(exc)) from None
    except ValueError as exc:  # channels or size no input can have (a sidecar not checked)
        raise EdgeOptError(f"preprocessing: {exc}") from None
    return normalise(pixels, mean, std)


def _run_onnx(model: Path, batch: np.ndarray, sidecar: dict[str, Any]) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sidecar["input"].get("name") or session.get_inputs()[0].name
    return np.asarray(session.run(None, {name: batch.astype(np.float32)})[0], dtype=np.float64)


def _run_torchscript(model: Path, batch: np.ndarray, sidecar: dict[str, Any]) -> np.ndarray:
    import torch

    module = torch.jit.load(str(model), map_location="cpu").eval()
    dtype = getattr(torch, str(sidecar["input"].get("dtype", "float32")))
    with torch.inference_mode():
        # One image per call: a traced file may have its batch size fixed at 1.
        out = [module(torch.from_numpy(x[None]).to(dtype)).float() for x in batch]
    return torch.cat(out).double().numpy()


def _logits(runner: Any, model: Path, batch: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    try:
        return np.asarray(runner(model, batch, meta))
    except Exception as exc:  # a runtime's own error: one line naming the model
        detail = " ".join(str(exc).split())[:300]
        raise EdgeOptError(
            f"{model}: running the model failed ({type(exc).__name__}: {detail})"
        ) from None


def predict_images(
    model: str | Path, images: Sequence[str | Path], sidecar: str | Path | None = None
) -> list[Prediction]:
    """Run ``model`` (``.onnx`` or TorchScript ``.pt``) on image files.

    Args:
        model: an exported model (``models/<id>.onnx`` of a run, or ``edge-opt export``'s).
        images: PNG, JPEG or BMP files.
        sidecar: the model's sidecar; default ``<model>.json`` next to it.

    Returns:
        One prediction per image, in order.

    Raises:
        EdgeOptError: a missing or mismatched sidecar, an unreadable model or image (named).
    """
    model = Path(model)
    if not images:
        raise EdgeOptError("no images given; pass one or more image files after the model")
    if not model.is_file():
        raise EdgeOptError(f"{model}: no such model file; give an exported .onnx or .pt file")
    if model.suffix == ".json":
        described = _described_model(model)
        raise EdgeOptError(
            f"{model}: this is a model's sidecar, not a model; pass the model file it describes"
            + (f" ({model.with_name(described)})" if described else " (.onnx or .pt)")
        )
    sidecar_file = Path(sidecar) if sidecar is not None else find_sidecar(model)
    meta = read_sidecar(sidecar_file)
    _check_model(model, meta, sidecar_file)
    runner = {"onnx": _run_onnx, "torchscript": _run_torchscript}.get(meta["format"])
    if runner is None:
        raise EdgeOptError(f"{sidecar_file}: format {meta['format']!r} is not onnx/torchscript")
    # In chunks: memory stays bounded however many images are given.
    logits = np.concatenate(
        [
            _logits(runner, model, preprocess(images[i : i + PREDICT_CHUNK], meta), meta)
            for i in range(0, len(images), PREDICT_CHUNK)
        ]
    )
    names = list(meta["class_names"])
    if names and len(names) != logits.shape[1]:
        raise EdgeOptError(
            f"{sidecar_file}: lists {len(names)} class names but {model.name} outputs "
            f"{logits.shape[1]} classes; use the sidecar exported with this model"
        )
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    top = probs.argmax(axis=1)
    return [
        Prediction(
            str(path),
            int(k),
            names[int(k)] if int(k) < len(names) else str(k),
            float(probs[i, k]),
        )
        for i, (path, k) in enumerate(zip(images, top, strict=True))
    ]
