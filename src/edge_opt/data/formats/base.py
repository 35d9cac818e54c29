"""What every dataset format returns: a ``RawDataset`` of uint8 (or [0, 1] float) images with
labels, class names and provenance, checked the same way whatever the source."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from edge_opt.errors import DataError
from edge_opt.infra.text import name_problem

# ------------------------------------------------------------------------------------ limits
# Every input is bounded before anything proportional to what it claims is allocated
# (docs/data.md#limits). Readers look these up here when they run (``base.MAX_...``), so one
# edit (or a test's monkeypatch) changes every format.
MAX_IMAGES = 10_000_000  # images in one split (a factory's len())
MAX_CLASSES = 100_000  # classes: len(class_names), or the largest label + 1
MAX_ARRAY_BYTES = (
    4 * 2**30
)  # one dataset decoded: an npz's arrays, one IDX file, a factory's splits
MAX_IMAGE_FILE_BYTES = 64 * 2**20  # one image file on disk
MAX_IMAGE_PIXELS = 8192 * 8192  # one decoded image, width x height (read from its header first)
MAX_INPUT_SIDE = 4096  # a model input's height or width that images are resized to
MAX_SIDECAR_BYTES = 16 * 2**20  # a model's sidecar JSON

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

    def __post_init__(self) -> None:
        for i, name in enumerate(self.class_names):
            problem = name_problem(name)
            if problem is not None:
                raise DataError(
                    f"{self.source}: class name {i} ({str(name)[:60]!r}): {problem}; a name is "
                    "printed as one field of one line: rename the folder or fix class_names"
                )

    def names(self) -> tuple[str, ...]:
        """Class names in label order (``class_names``, or the label numbers)."""
        return self.class_names or tuple(str(i) for i in range(self.num_classes))


@dataclass(frozen=True)
class LoadRequest:
    """What a format needs besides its spec: the model's input shape, and for names, data_dir."""

    input_shape: tuple[int, int, int]
    data_dir: str | Path | None = None


def format_bytes(n: int) -> str:
    """``n`` bytes for a message: ``4.0 GiB``, ``64.0 MiB`` or ``512 bytes``."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_regular(path: Path, mode: int) -> str | None:
    """Why ``path`` (``mode``: its ``os.stat`` mode, symlinks followed) is not a regular file,
    naming where a symlink leads; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    target = Path(os.path.realpath(path))
    via = f" (it resolves to {target})" if target != Path(os.path.abspath(path)) else ""
    return f"{path}{via} is {kind}, not a regular file"


def _check_stat(path: Path, info: os.stat_result, max_bytes: int | None, limit: str) -> None:
    problem = not_regular(path, info.st_mode)
    if problem:
        raise DataError(f"{problem}; give a regular file (a pipe or device is never read)")
    if max_bytes is not None and info.st_size > max_bytes:
        raise DataError(
            f"{path}: {format_bytes(info.st_size)} ({info.st_size:,} bytes), more than the "
            f"{format_bytes(max_bytes)} limit ({limit}); use a smaller file"
        )


def open_regular_file(path: Path, max_bytes: int | None = None, limit: str = "") -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file (symlinks followed) of at
    most ``max_bytes``.

    Checked with ``os.stat`` before opening (opening a FIFO waits for a writer forever, a
    device never ends) and again on the open descriptor (the name may change in between).

    Raises:
        DataError: not a regular file, or larger than ``max_bytes`` (``limit`` names the limit).
        OSError: as ``os.stat`` and ``os.open`` raise (FileNotFoundError, PermissionError).
    """
    _check_stat(path, os.stat(path), max_bytes, limit)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        _check_stat(path, os.fstat(fd), max_bytes, limit)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular_file(path: Path, max_bytes: int, limit: str) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (see ``open_regular_file``); a file
    that grows past the limit while read is refused too.

    Raises:
        DataError: not a regular file, or larger than ``max_bytes``.
        OSError: the file cannot be opened or read.
    """
    with open_regular_file(path, max_bytes, limit) as fh:
        size = os.fstat(fh.fileno()).st_size
        data = fh.read(size + 1)  # sized by the file, not the limit; +1 sees a file that grew
        if len(data) > size:
            data += fh.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise DataError(
            f"{path}: grew past the {format_bytes(max_bytes)} limit ({limit}) while read; "
            "use a smaller file that is not being written"
        )
    return data


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


def count_classes(labels: Mapping[str, np.ndarray], names: tuple[str, ...] = ()) -> int:
    """K: the number of class names, else the largest label + 1 (``labels``: where -> integer
    labels), checked against ``MAX_CLASSES`` before anything sized by K is made.

    Raises:
        DataError: K past the limit, naming the array, the label and its index.
    """
    if names:
        if len(names) > MAX_CLASSES:
            raise DataError(
                f"class_names: {len(names):,} names, more than the {MAX_CLASSES:,}-class limit "
                "(MAX_CLASSES); give one name per class"
            )
        return len(names)
    tops = {where: int(y.max(initial=0)) for where, y in labels.items()}
    where = max(tops, key=lambda w: tops[w])
    if tops[where] >= MAX_CLASSES:
        index = int(np.argmax(labels[where]))
        raise DataError(
            f"{where}: label {tops[where]} (at index {index}) implies {tops[where] + 1:,} classes, "
            f"more than the {MAX_CLASSES:,}-class limit (MAX_CLASSES); labels are class indices "
            "0..K-1: fix the labels"
        )
    return tops[where] + 1


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
