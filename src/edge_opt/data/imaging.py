"""Image files to model inputs with Pillow and numpy only (no torch: ``edge-opt predict`` runs
an ONNX model on a device without it). One function decodes for training and for predict, so
the two see the same pixels.

Steps, in order: read the file (a regular file of at most ``MAX_IMAGE_FILE_BYTES``: never a
FIFO or a device, even through a symlink); check its size in pixels from the header
(``MAX_IMAGE_PIXELS``) before decoding; decode; convert to the model's channels (Pillow's ``L``
for 1 channel, ITU-R 601-2 luma from colour; ``RGB`` for 3, a grey image repeated; alpha
dropped; 16-bit grey by its bit depth, round(value / 257), so 65535 is 255 and a dark image
stays as dark as its 8-bit version); resize to the model's height x width (bilinear) when the
size differs; then, for the model, ``(pixel / 255 - mean) / std`` per channel.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge_opt.data.formats import base
from edge_opt.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
RESIZE_METHOD = "bilinear"  # Pillow's Image.Resampling.BILINEAR
_MODES = {1: "L", 3: "RGB"}
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")  # Pillow's modes of a 16-bit grey file


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


def check_input_size(size: tuple[int, int]) -> None:
    """A model input (height, width) that images can be resized to: 1..MAX_INPUT_SIDE each.

    Raises:
        ValueError: naming the size and the limit (the model's, not an image's, fault).
    """
    if not all(1 <= side <= base.MAX_INPUT_SIDE for side in size):
        raise ValueError(
            f"a model input of {size[0]}x{size[1]} pixels is outside the 1..{base.MAX_INPUT_SIDE}"
            " pixels per side images are resized to (MAX_INPUT_SIDE); use a smaller input size"
        )


def _read_file(path: str | Path) -> bytes:
    try:
        return base.read_regular_file(
            Path(path), base.MAX_IMAGE_FILE_BYTES, "MAX_IMAGE_FILE_BYTES per image"
        )
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: no such file") from None
    except DataError as exc:  # a FIFO, a device, or too large: the message names the file
        raise ImageDecodeError(str(exc)) from None
    except OSError as exc:
        raise ImageDecodeError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _pixel_limit(path: str | Path, size: tuple[int, int]) -> ImageDecodeError:
    width, height = size
    return ImageDecodeError(
        f"{path}: {width}x{height} = {width * height:,} pixels, more than the "
        f"{base.MAX_IMAGE_PIXELS:,} edge-opt decodes per image (MAX_IMAGE_PIXELS); "
        "downscale the image"
    )


def _eight_bit(image: Any) -> Any:
    """16-bit grey as 8-bit ``L`` by the file's bit depth: round(value / 257), whatever the
    image's own brightness (65535 -> 255; 257 * k -> k, as the 8-bit file would say)."""
    from PIL import Image

    if image.mode not in _SIXTEEN_BIT:
        return image
    grey = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
    return Image.fromarray(((grey * 255 + 32767) // 65535).astype(np.uint8))  # mode L


def decode_image(path: str | Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """One image file as uint8 (channels, height, width), converted and resized as above.

    Args:
        path: a PNG, JPEG or BMP file (a regular file, symlinks followed).
        channels: 1 or 3 (the model's input channels).
        size: (height, width) of the model's input.

    Raises:
        ImageDecodeError: the file is missing, not a regular file, past a limit
            (``MAX_IMAGE_FILE_BYTES``, ``MAX_IMAGE_PIXELS``), truncated, corrupt or not an image.
        ValueError: ``channels`` or ``size`` no model input can have.
    """
    from PIL import Image

    mode = mode_for_channels(channels)
    check_input_size(size)
    data = _read_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                if opened.size[0] * opened.size[1] > base.MAX_IMAGE_PIXELS:
                    raise _pixel_limit(path, opened.size)  # from the header, nothing decoded
                opened.load()  # decode now: a truncated file fails here, naming this path
                image = _eight_bit(opened)
                if image.mode in ("RGBA", "LA", "PA") or (
                    image.mode == "P" and "transparency" in image.info
                ):
                    image = image.convert("RGBA").convert("RGB")  # alpha dropped, not blended
                converted = image.convert(mode)
                height, width = size
                if converted.size != (width, height):
                    converted = converted.resize((width, height), Image.Resampling.BILINEAR)
                pixels = np.asarray(converted, dtype=np.uint8)
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ImageDecodeError(
            f"{path}: more than the {base.MAX_IMAGE_PIXELS:,} pixels edge-opt decodes per image "
            f"(MAX_IMAGE_PIXELS; {detail}); downscale the image"
        ) from None
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
