"""``csv-pixels``: images as CSV rows, the layout of Kaggle's MNIST CSV files.

``dataset: {format: csv-pixels, path: DIR}`` reads ``DIR/train.csv`` and ``DIR/test.csv``
(and ``DIR/val.csv`` when present): one image per row, ``label,p0,p1,...`` with the pixels of
one (C, H, W) image in row-major order as integers 0..255; a first row that is not numbers is
a header and skipped. The image shape is the model's input shape. Files are bounded before
they are read, and every problem names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_opt.data.formats.base import (
    LoadRequest,
    RawDataset,
    check_images,
    check_labels,
    given_stats,
    unit_images,
)
from edge_opt.data.formats.registry import DatasetFormatSpec
from edge_opt.errors import DataError

if TYPE_CHECKING:
    from edge_opt.config.sections import DatasetSpec

SPEC = DatasetFormatSpec(
    name="csv-pixels",
    loader="edge_opt_example_plugin.csv_pixels:load_csv_pixels",
    description="CSV rows label,p0,p1,... (Kaggle's MNIST layout) in train.csv/test.csv",
)
MAX_BYTES = 512 * 2**20  # a CSV larger than this is refused before it is read


def _read(path: Path, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: missing; csv-pixels reads train.csv and test.csv")
    if path.stat().st_size > MAX_BYTES:
        raise DataError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; split it or use npz")
    with path.open(encoding="ascii", errors="replace") as fh:
        first = fh.readline()
    header = not first.split(",")[0].strip().lstrip("-").isdigit()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, skiprows=1 if header else 0)
    except ValueError as exc:
        raise DataError(f"{path}: not rows of integers ({exc})") from None
    table = np.atleast_2d(table)
    pixels = int(np.prod(shape))
    if table.shape[1] != pixels + 1:
        raise DataError(
            f"{path}: rows hold {table.shape[1] - 1} pixels, the model's input {list(shape)} "
            f"needs {pixels} (label first, then the pixels)"
        )
    images = table[:, 1:].reshape(len(table), *shape)
    return images, table[:, 0]


def load_csv_pixels(spec: DatasetSpec, request: LoadRequest) -> RawDataset:
    """Read the CSV files of ``spec.path`` as a ``RawDataset``.

    Raises:
        DataError: a missing or oversized file, rows of the wrong length, labels out of range,
            pixels outside 0..255; each message names the file.
    """
    root = Path(str(spec.path)).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset.path: {root} is not a folder holding train.csv and test.csv")
    splits = {}
    for split in ("train", "test", "val"):
        path = root / f"{split}.csv"
        if split == "val" and not path.is_file():
            continue
        images, labels = _read(path, request.input_shape)
        check_images(images, path, ndim=4)
        stored, divisor = unit_images(images, str(path))
        splits[split] = (stored, labels, divisor)
    names = tuple(spec.class_names or ())
    num_classes = len(names) or int(max(int(s[1].max()) for s in splits.values())) + 1
    for split, (images, labels, _) in splits.items():
        check_labels(labels, len(images), num_classes, root / f"{split}.csv")
    val = splits.get("val")
    return RawDataset(
        name=root.name,
        source=f"csv-pixels files in {root}",
        train_images=splits["train"][0],
        train_labels=splits["train"][1],
        test_images=splits["test"][0],
        test_labels=splits["test"][1],
        files=tuple(root / f"{s}.csv" for s in splits),
        num_classes=num_classes,
        class_names=names,
        val_images=val[0] if val else None,
        val_labels=val[1] if val else None,
        pixel_divisor=splits["train"][2],
        mean=given_stats(spec.mean),
        std=given_stats(spec.std),
    )
