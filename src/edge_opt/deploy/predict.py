"""``edge-opt predict MODEL IMAGE...``: run an exported model on image files, preprocessed
exactly as its sidecar says, and return class and probability per image.

This is what a user runs on the device to check a deployable file. For ``.onnx`` it needs
only numpy, Pillow and onnxruntime (torch is not imported); a TorchScript ``.pt`` needs torch.
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

from edge_opt.data.imaging import ImageDecodeError, decode_image, normalise
from edge_opt.errors import EdgeOptError

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
    """``<id>.json`` next to the model (or ``<file>.json`` when that one is another model's).

    Raises:
        EdgeOptError: neither exists.
    """
    for path in (model.with_suffix(".json"), model.with_name(model.name + ".json")):
        if path.is_file():
            try:
                owner = json.loads(path.read_text(encoding="utf-8")).get("model_file")
            except (OSError, ValueError, AttributeError):
                owner = None
            if owner in (None, model.name):
                return path
    raise EdgeOptError(
        f"{model}: no sidecar {model.with_suffix('.json').name} next to it; copy the model's "
        "sidecar from the run's models/ folder, or pass --sidecar FILE"
    )


def read_sidecar(path: Path) -> dict[str, Any]:
    """The sidecar's JSON, checked for the keys predict needs.

    Raises:
        EdgeOptError: unreadable, not JSON, or missing keys (naming the file).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
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


def _described_model(sidecar: Path) -> str | None:
    try:
        name = json.loads(sidecar.read_text(encoding="utf-8")).get("model_file")
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
    return None


def _check_model(model: Path, sidecar: dict[str, Any], sidecar_file: Path) -> None:
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    if digest != sidecar["model_sha256"]:
        raise EdgeOptError(
            f"{model}: sha256 {digest[:16]}... differs from {sidecar_file.name}'s "
            f"{str(sidecar['model_sha256'])[:16]}...; the sidecar describes another file: use "
            "the sidecar exported with this model"
        )


def preprocess(images: Sequence[str | Path], sidecar: dict[str, Any]) -> np.ndarray:
    """Decode, convert, resize and normalise image files as the sidecar says: (N, C, H, W).

    Raises:
        EdgeOptError: an image that cannot be read (naming it).
    """
    pre = sidecar["preprocessing"]
    channels, size = int(pre["channels"]), (int(pre["height"]), int(pre["width"]))
    mean = pre["mean"] if isinstance(pre["mean"], list) else [pre["mean"]]
    std = pre["std"] if isinstance(pre["std"], list) else [pre["std"]]
    try:
        pixels = np.stack([decode_image(p, channels, size) for p in images])
    except ImageDecodeError as exc:
        raise EdgeOptError(str(exc)) from None
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
    batch = preprocess(images, meta)
    runner = {"onnx": _run_onnx, "torchscript": _run_torchscript}.get(meta["format"])
    if runner is None:
        raise EdgeOptError(f"{sidecar_file}: format {meta['format']!r} is not onnx/torchscript")
    try:
        logits = runner(model, batch, meta)
    except Exception as exc:  # a runtime's own error: one line naming the model
        detail = " ".join(str(exc).split())[:300]
        raise EdgeOptError(
            f"{model}: running the model failed ({type(exc).__name__}: {detail})"
        ) from None
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
