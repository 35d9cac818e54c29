"""What every dataset format returns: a ``RawDataset`` of uint8 (or [0, 1] float) images with
labels, class names and provenance, checked the same way whatever the source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_opt.errors import DataError

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGIT_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class RawDataset:
    """Images (N, C, H, W) and labels (N,) int64; ``test`` is None for a single pool.

    Images are uint8 (pixel / ``pixel_divisor`` gives [0, 1]) or float already in [0, 1]
    (``pixel_divisor`` 1). ``val_*``: a validation split the source provides (else it is held
    out of the training images). ``skipped``: unreadable files left out (``skip_bad_images``).
    ``mean``/``std``: normalisation given by the user (else computed on the training split).
    """

    name: str
    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    files: tuple[Path, ...]
    num_classes: int = 10
    class_names: tuple[str, ...] = ()
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    pixel_divisor: float = 255.0
    skipped: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    content_sha256: str | None = None  # sources of many files (image folders): one digest
    preprocessing: tuple[tuple[str, str], ...] = ()  # how files became arrays (decode, resize)

    def names(self) -> tuple[str, ...]:
        """Class names in label order (``class_names``, or the label numbers)."""
        return self.class_names or tuple(str(i) for i in range(self.num_classes))


@dataclass(frozen=True)
class LoadRequest:
    """What a format needs besides its spec: the model's input shape, and for names, data_dir."""

    input_shape: tuple[int, int, int]
    data_dir: str | Path | None = None


# A format turns its config entry (a DatasetSpec, or a name for idx) into a RawDataset.
DatasetLoader = Callable[..., RawDataset]


def check_images(images: np.ndarray, path: Path | str, ndim: int = 3) -> None:
    """Shape, emptiness and finite values of an image array read from ``path``."""
    if images.ndim != ndim:
        wanted = "(N, H, W)" if ndim == 3 else "(N, C, H, W)"
        raise DataError(f"{path}: expected images {wanted}, got an array of shape {images.shape}")
    if images.size == 0:
        raise DataError(
            f"{path}: holds no images (its header says shape {images.shape}); "
            "use a complete image file"
        )
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        bad = ~np.isfinite(images)
        first = int(np.argmax(bad.reshape(len(images), -1).any(axis=1)))
        raise DataError(
            f"{path}: {int(bad.sum())} pixel values are NaN or infinite (the first in image "
            f"{first}); fix or remove those images"
        )


def check_labels(labels: np.ndarray, n_images: int, num_classes: int, path: Path | str) -> None:
    """One integer label per image, each in 0..num_classes-1."""
    if labels.ndim != 1 or len(labels) != n_images:
        raise DataError(
            f"{path}: expected {n_images} labels (one per image), got shape {labels.shape}"
        )
    if labels.dtype.kind not in "iu":
        raise DataError(f"{path}: labels must be integers, the file holds {labels.dtype} values")
    outside = (labels < 0) | (labels >= num_classes)
    if outside.any():
        index = int(np.argmax(outside))
        raise DataError(
            f"{path}: label {int(labels[index])} (at index {index}) is outside the "
            f"num_classes={num_classes} classes 0..{num_classes - 1}; "
            "fix the label file or use a dataset whose labels fit"
        )


def unit_images(images: np.ndarray, where: str) -> tuple[np.ndarray, float]:
    """Images as stored for the splits, and their divisor: uint8 as is (/255); integers within
    0..255 as uint8; floats must already lie in [0, 1] (kept as float32, divisor 1).

    Raises:
        DataError: other dtypes, integers outside 0..255, floats outside [0, 1] or not finite.
    """
    kind = images.dtype.kind
    if images.dtype == np.uint8:
        return images, 255.0
    if kind in "iu":
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DataError(
                f"{where}: integer pixels must lie in 0..255, found {low}..{high}; "
                "save 8-bit images (uint8) or floats in [0, 1]"
            )
        return images.astype(np.uint8), 255.0
    if kind == "f":
        if not np.isfinite(images).all():
            raise DataError(f"{where}: pixel values are NaN or infinite; fix those images")
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"{where}: float pixels must lie in [0, 1] (pixel / 255), found "
                f"{low:.4g}..{high:.4g}; scale them to [0, 1] or save uint8 (0..255). "
                "Normalisation (mean, std) is applied by edge-opt, not stored in the data"
            )
        return images.astype(np.float32), 1.0
    raise DataError(f"{where}: pixels of dtype {images.dtype} are not images; use uint8 or float")


def given_stats(value: float | tuple[float, ...] | None) -> tuple[float, ...] | None:
    """A configured ``mean``/``std`` as a tuple (one value, or one per channel)."""
    if value is None:
        return None
    return tuple(float(v) for v in value) if isinstance(value, tuple) else (float(value),)
