"""Image files to model inputs with Pillow and numpy only (no torch: ``edge-opt predict`` runs
an ONNX model on a device without it). One function decodes for training and for predict, so
the two see the same pixels.

Steps, in order: decode; convert to the model's channels (Pillow's ``L`` for 1 channel, ITU-R
601-2 luma from colour; ``RGB`` for 3, a grey image repeated; alpha dropped; 16-bit grey
scaled to 8 bits); resize to the model's height x width (bilinear) when the size differs;
then, for the model, ``(pixel / 255 - mean) / std`` per channel.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
RESIZE_METHOD = "bilinear"  # Pillow's Image.Resampling.BILINEAR
_MODES = {1: "L", 3: "RGB"}


class ImageDecodeError(ValueError):
    """An image file that Pillow cannot read; the message names the file."""


def mode_for_channels(channels: int) -> str:
    """Pillow mode of a model with ``channels`` input channels (1 -> L, 3 -> RGB).

    Raises:
        ValueError: other channel counts (image files have 1 or 3).
    """
    if channels not in _MODES:
        raise ValueError(
            f"a model with {channels} input channels cannot take image files (1 = grey, 3 = RGB)"
        )
    return _MODES[channels]


def decode_image(path: str | Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """One image file as uint8 (channels, height, width), converted and resized as above.

    Args:
        path: a PNG, JPEG or BMP file.
        channels: 1 or 3 (the model's input channels).
        size: (height, width) of the model's input.

    Raises:
        ImageDecodeError: the file is missing, truncated, corrupt or not an image.
    """
    from PIL import Image

    mode = mode_for_channels(channels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # decode now: a truncated file fails here, naming this path
                if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                    grey = np.asarray(image, dtype=np.int64)
                    shift = 8 if grey.max() > 255 else 0
                    image = Image.fromarray((grey >> shift).clip(0, 255).astype(np.uint8), "L")
                if image.mode in ("RGBA", "LA", "PA") or (
                    image.mode == "P" and "transparency" in image.info
                ):
                    image = image.convert("RGBA").convert("RGB")  # alpha dropped, not blended
                converted = image.convert(mode)
                height, width = size
                if converted.size != (width, height):
                    converted = converted.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(converted, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: no such file") from None
    except Exception as exc:  # Pillow raises many kinds (UnidentifiedImageError, OSError, ...)
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ImageDecodeError(f"{path}: not a readable image ({detail})") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1).copy()


def normalise(
    pixels: np.ndarray, mean: Sequence[float], std: Sequence[float], divisor: float = 255.0
) -> np.ndarray:
    """``(pixels / divisor - mean) / std`` as float32, per channel (one value = all channels).

    ``pixels`` is (N, C, H, W) or (C, H, W).
    """
    x = pixels.astype(np.float32) / np.float32(divisor)
    channel_axis = x.ndim - 3
    shape = [1] * x.ndim
    shape[channel_axis] = -1
    m = np.asarray(mean, dtype=np.float32).reshape(shape)
    s = np.asarray(std, dtype=np.float32).reshape(shape)
    return (x - m) / s
