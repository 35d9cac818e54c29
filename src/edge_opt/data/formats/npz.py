"""``{format: npz, path: FILE}``: NumPy arrays ``x_train, y_train, x_test, y_test`` (and
optionally ``x_val, y_val`` and ``class_names``).

Images are (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3 (the layout is read from
where the 1 or 3 is), uint8 (0..255), other integers within 0..255, or floats in [0, 1].
Labels are integers 0..K-1, K = len(class_names) (from the config, else the file, else the
largest label + 1). Read with ``allow_pickle=False``: a file cannot run code. Before anything
is decompressed, each member's size in the zip directory and its array header (shape, dtype)
are checked against ``MAX_ARRAY_BYTES`` (a small compressed file can inflate to gigabytes).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_opt.data.formats import base
from edge_opt.data.formats.base import (
    LoadRequest,
    RawDataset,
    check_images,
    check_labels,
    count_classes,
    format_bytes,
    given_stats,
    unit_images,
)
from edge_opt.errors import DataError

if TYPE_CHECKING:
    from edge_opt.config.sections import DatasetSpec

REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def to_nchw(images: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W) / NHWC / NCHW with 1 or 3 channels -> NCHW.

    Raises:
        DataError: another rank, or no axis of 1 or 3 channels (or both ends ambiguous).
    """
    if images.ndim == 3:
        return images[:, None]
    if images.ndim != 4:
        raise DataError(
            f"{where}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape "
            f"{images.shape}"
        )
    first, last = images.shape[1] in (1, 3), images.shape[3] in (1, 3)
    if first and not last:
        return images
    if last and not first:
        return images.transpose(0, 3, 1, 2)
    raise DataError(
        f"{where}: cannot tell the channel axis of shape {images.shape} (NCHW or NHWC with 1 or "
        "3 channels expected); save the images as (N, C, H, W) with H, W > 3"
    )


def _member_bytes(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Bytes a member becomes once loaded: its uncompressed size in the zip directory, or
    what its .npy header's shape and dtype need, whichever is larger (only the header is read).
    """
    if not info.filename.endswith(".npy"):
        return info.file_size
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(member)
    return max(info.file_size, math.prod(shape) * dtype.itemsize)


def _check_sizes(archive: zipfile.ZipFile, path: Path) -> None:
    """Every member's loaded size, summed, within ``MAX_ARRAY_BYTES`` (nothing decompressed)."""
    total = 0
    for info in archive.infolist():
        size = _member_bytes(archive, info)
        total += size
        if total > base.MAX_ARRAY_BYTES:
            name = info.filename.removesuffix(".npy")
            raise DataError(
                f"{path}[{name}]: {format_bytes(size)} once decompressed, bringing the file to "
                f"{format_bytes(total)}, more than the {format_bytes(base.MAX_ARRAY_BYTES)} "
                "limit (MAX_ARRAY_BYTES); store fewer or smaller images"
            )


def _read(path: Path) -> dict[str, np.ndarray]:
    if path.is_dir():
        raise DataError(f"dataset.path: {path} is a directory; give the .npz file")
    try:
        with base.open_regular_file(path) as fh:  # a FIFO or device is refused unopened
            if not zipfile.is_zipfile(fh):
                raise DataError(
                    f"{path}: not an .npz file (an .npz is a zip archive of arrays); save it "
                    "with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
                )
            with zipfile.ZipFile(fh) as archive:
                _check_sizes(archive, path)
            fh.seek(0)
            with np.load(fh, allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"dataset.path: {path} does not exist; give the .npz file") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise DataError(
            f"{path}: not a readable .npz file ({type(exc).__name__}: {detail}); save it with "
            "numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
        ) from None


def load_npz(spec: DatasetSpec, request: LoadRequest) -> RawDataset:
    """Read the arrays; see the module docstring.

    Raises:
        DataError: a missing or unreadable file, missing arrays, mismatched lengths, labels
            out of range, images of different sizes or bad pixel values; naming file and array.
    """
    path = Path(str(spec.path)).expanduser()
    arrays = _read(path)
    missing = [k for k in REQUIRED if k not in arrays]
    if ("x_val" in arrays) != ("y_val" in arrays):
        missing.append("y_val" if "x_val" in arrays else "x_val")
    if missing:
        raise DataError(
            f"{path}: missing array(s) {', '.join(missing)} (holds {', '.join(arrays) or 'none'});"
            f" an edge-opt .npz has {', '.join(REQUIRED)} (and optionally x_val, y_val)"
        )
    names: tuple[str, ...] = tuple(spec.class_names or ())
    if not names and "class_names" in arrays:
        names = tuple(str(n) for n in np.asarray(arrays["class_names"]).reshape(-1))
    splits = ("train", "val", "test") if "x_val" in arrays else ("train", "test")
    images: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    divisors = set()
    for split in splits:
        where = f"{path}[x_{split}]"
        x = to_nchw(arrays[f"x_{split}"], where)
        check_images(x, where, ndim=4)
        images[split], divisor = unit_images(x, where)
        divisors.add(divisor)
        labels[split] = arrays[f"y_{split}"]
        if labels[split].dtype.kind not in "iu":
            raise DataError(
                f"{path}[y_{split}]: labels must be integers (class indices), the array holds "
                f"{labels[split].dtype} values"
            )
    if len(divisors) > 1:
        raise DataError(f"{path}: mix of uint8 and float image arrays; store every split alike")
    num_classes = count_classes({f"{path}[y_{split}]": labels[split] for split in splits}, names)
    for split in splits:
        check_labels(labels[split], len(images[split]), num_classes, f"{path}[y_{split}]")
        if images[split].shape[1:] != images["train"].shape[1:]:
            raise DataError(
                f"{path}[x_{split}]: images of shape {list(images[split].shape[1:])} but "
                f"x_train's are {list(images['train'].shape[1:])}; every split needs one shape"
            )
    if num_classes < 2:
        raise DataError(f"{path}: the labels hold one class; a classifier needs at least 2")
    return RawDataset(
        name=path.stem,
        source=f"npz arrays in {path}",
        train_images=images["train"],
        train_labels=labels["train"].astype(np.int64),
        test_images=images["test"],
        test_labels=labels["test"].astype(np.int64),
        files=(path,),
        num_classes=num_classes,
        class_names=names,
        val_images=images.get("val"),
        val_labels=labels["val"].astype(np.int64) if "val" in labels else None,
        pixel_divisor=divisors.pop(),
        mean=given_stats(spec.mean),
        std=given_stats(spec.std),
    )
