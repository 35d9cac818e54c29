"""`edge-opt predict` bounds every input (issue 20): a sidecar asking for a 60000x60000 input,
a FIFO or a symlink to /dev/zero given as an image or a sidecar are refused in one line naming
the file and field, before anything of that size is read or allocated."""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edge_opt.deploy.predict import predict_images
from edge_opt.errors import EdgeOptError


def _sidecar(model: Path, side: int = 8, shape_side: int | None = None) -> dict[str, Any]:
    shape_side = side if shape_side is None else shape_side
    return {
        "model_file": model.name,
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "format": "onnx",
        "input": {"name": "x", "shape": ["N", 1, shape_side, shape_side], "layout": "NCHW"},
        "preprocessing": {"channels": 1, "height": side, "width": side, "mean": 0.5, "std": 0.25},
        "class_names": ["a", "b"],
    }


@pytest.fixture
def model(tmp_path) -> Path:
    """A model file and its sidecar; not a real ONNX graph: every refusal comes before it runs."""
    path = tmp_path / "m.onnx"
    path.write_bytes(b"not an onnx graph")
    (tmp_path / "m.json").write_text(json.dumps(_sidecar(path)))
    Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "ok.png")
    return path


def _refused(model: Path, images: list[Path], sidecar: Path | None = None) -> str:
    tracemalloc.start()
    try:
        with pytest.raises(EdgeOptError) as info:
            predict_images(model, images, sidecar)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "\n" not in message
    assert peak < 4 * 2**20, f"allocated {peak:,} bytes"
    return message


def test_the_hand_made_sidecar_passes_every_check(model) -> None:
    with pytest.raises(EdgeOptError, match=r"m\.onnx: running the model failed"):
        predict_images(model, [model.parent / "ok.png"])


def test_sidecar_asking_for_60000x60000_names_the_field(model, tmp_path) -> None:
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps(_sidecar(model, side=60000)))
    message = _refused(model, [tmp_path / "ok.png"], huge)
    assert message == (
        f"{huge}: preprocessing.height is 60000, more than the 4096 pixels a side predict resizes "
        "images to (MAX_INPUT_SIDE); export the model again (edge-opt export RUN_DIR)"
    )
    shape_only = tmp_path / "shape.json"
    shape_only.write_text(json.dumps(_sidecar(model, side=8, shape_side=60000)))
    message = _refused(model, [tmp_path / "ok.png"], shape_only)
    assert "input.shape ['N', 1, 60000, 60000] is not [N, 1, 8, 8]" in message


def test_fifo_image_is_refused_unopened(model, tmp_path, deadline) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    message = _refused(model, [tmp_path / "ok.png", tmp_path / "pipe.png"])
    assert message.startswith(f"{tmp_path / 'pipe.png'} is a FIFO (named pipe), not a regular")


def test_symlink_to_dev_zero_image_is_refused_unread(model, tmp_path) -> None:
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    message = _refused(model, [tmp_path / "zero.png"])
    assert message.startswith(
        f"{tmp_path / 'zero.png'} (it resolves to /dev/zero) is a character device, not a regular"
    )


def test_fifo_or_device_sidecar_is_refused_unopened(model, tmp_path, deadline) -> None:
    os.mkfifo(tmp_path / "pipe.json")
    message = _refused(model, [tmp_path / "ok.png"], tmp_path / "pipe.json")
    assert message.startswith(f"{tmp_path / 'pipe.json'} is a FIFO (named pipe)")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    message = _refused(model, [tmp_path / "ok.png"], tmp_path / "zero.json")
    assert "(it resolves to /dev/zero) is a character device" in message
