"""``{format: imagefolder, path: DIR}``: one sub-folder per class, images decoded with Pillow.

Layouts: ``DIR/<class>/*.png`` (one pool, split by seed like the MNIST sample), or
``DIR/train/<class>/...`` and ``DIR/test/<class>/...`` with an optional ``DIR/val/<class>/...``.
Classes are the sub-folder names in sorted order (label = position). Images are converted to
the model's channels and resized to its input size (``edge_opt.data.imaging``). Hidden files
(``.name``) are ignored; any other file that is not PNG/JPEG/BMP is an error, as is an entry
that is not a regular file (a FIFO, a device, a symlink to one: never opened, whatever
``skip_bad_images`` says), an empty class folder, a nested folder, a single class, or a
corrupt image or one past the limits (``MAX_IMAGE_FILE_BYTES``, ``MAX_IMAGE_PIXELS``; unless
``skip_bad_images``, which leaves it out and counts it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge_opt.data.formats import base
from edge_opt.data.formats.base import LoadRequest, RawDataset, given_stats
from edge_opt.data.imaging import (
    IMAGE_SUFFIXES,
    RESIZE_METHOD,
    ImageDecodeError,
    check_input_size,
    decode_image,
    mode_for_channels,
)
from edge_opt.errors import DataError

if TYPE_CHECKING:
    from edge_opt.config.sections import DatasetSpec

SPLIT_DIRS = ("train", "val", "test")


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _check_regular(entry: Path) -> None:
    """Refuse a FIFO, device or socket (or a symlink to one) before anything opens it: a FIFO
    blocks forever, /dev/zero never ends. A dangling symlink is left to the decoder to name."""
    try:
        mode = entry.stat().st_mode
    except OSError:
        return
    problem = base.not_regular(entry, mode)
    if problem:
        raise DataError(f"{problem}; class folders hold image files only: remove it")


def list_class_files(root: Path) -> dict[str, list[Path]]:
    """Class name -> its image files (sorted), for one tree of class folders.

    Raises:
        DataError: no class folders, one class, an empty class, a nested folder, a file
            that is not an image, or an entry that is not a regular file.
    """
    classes = [p for p in _visible(root) if p.is_dir()]
    if not classes:
        raise DataError(
            f"dataset.path: {root} has no class sub-folders; put each class's images in "
            f"{root}/<class name>/ (or use train/, val/, test/ trees of class folders)"
        )
    found: dict[str, list[Path]] = {}
    for folder in classes:
        files = []
        for entry in _visible(folder):
            if entry.is_dir():
                raise DataError(
                    f"{entry}: a folder inside class folder {folder.name!r}; class folders "
                    "hold image files only: move its images up or remove it"
                )
            if entry.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(
                    f"{entry}: not an image file (allowed: {', '.join(IMAGE_SUFFIXES)}); "
                    "move it out of the class folder"
                )
            _check_regular(entry)
            files.append(entry)
        if not files:
            raise DataError(
                f"{folder}: class folder {folder.name!r} holds no images; add images or remove it"
            )
        found[folder.name] = files
    return found


def _decode_all(
    files: list[tuple[Path, int]],
    channels: int,
    size: tuple[int, int],
    skip_bad: bool,
    skipped: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path, label in files:
        try:
            images.append(decode_image(path, channels, size))
        except ImageDecodeError as exc:
            if not skip_bad:
                raise DataError(
                    f"{exc}; fix or remove the file, or set dataset.skip_bad_images: true"
                ) from None
            skipped.append(str(path))
            continue
        labels.append(label)
    if not images:
        return np.zeros((0, channels, *size), np.uint8), np.zeros(0, np.int64)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _file_sha256(path: Path) -> bytes:
    """sha256 of a file's bytes, read in 1 MiB chunks (a skipped oversized file is hashed,
    never held in memory); a marker for a file that cannot be opened (a dangling symlink)."""
    content = hashlib.sha256()
    try:
        with base.open_regular_file(path) as fh:
            while chunk := fh.read(1 << 20):
                content.update(chunk)
    except (OSError, DataError):
        content.update(b"\0unreadable")
    return content.digest()


def _digest(files: list[tuple[Path, int]], root: Path) -> str:
    """sha256 over every file's path (relative to the root), label and bytes."""
    digest = hashlib.sha256()
    for path, label in files:
        digest.update(f"{path.relative_to(root)}\0{label}\0".encode())
        digest.update(_file_sha256(path))
    return digest.hexdigest()


def _class_trees(
    root: Path,
) -> tuple[dict[str, Path], dict[str, dict[str, list[Path]]], list[str]]:
    """The split folders found (train/, val/, test/; none: one pool), each split's class
    tree, and the classes (the training split's, sorted).

    Raises:
        DataError: split folders without train/ or test/, fewer than 2 classes, or a class in
            another split that training lacks.
    """
    split_roots = {name: root / name for name in SPLIT_DIRS if (root / name).is_dir()}
    if split_roots:
        if "train" not in split_roots or "test" not in split_roots:
            missing = " and ".join(n for n in ("train", "test") if n not in split_roots)
            raise DataError(
                f"dataset.path: {root} has {', '.join(n + '/' for n in split_roots)} but no "
                f"{missing}/; give train/ and test/ (val/ optional), or put the class folders "
                "directly in the folder for a seeded split"
            )
        trees = {name: list_class_files(path) for name, path in split_roots.items()}
    else:
        trees = {"pool": list_class_files(root)}
    classes = sorted(trees.get("train", trees.get("pool", {})))
    if len(classes) < 2:
        raise DataError(
            f"dataset.path: {root} has one class ({classes[0]!r}); a classifier needs at least "
            "2 class folders"
        )
    for split, tree in trees.items():
        extra = sorted(set(tree) - set(classes))
        if extra:
            raise DataError(
                f"{root / split / extra[0]}: class {extra[0]!r} is not among the training "
                f"classes ({', '.join(classes)}); add it to train/ or remove it"
            )
    return split_roots, trees, classes


def load_imagefolder(spec: DatasetSpec, request: LoadRequest) -> RawDataset:
    """Read a folder of class folders (or train/val/test trees of them).

    Raises:
        DataError: see the module docstring; every message names the file or folder.
    """
    root = Path(str(spec.path)).expanduser()
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise DataError(
            f"dataset.path: {root} {what}; give the folder holding one sub-folder per class"
        )
    channels, height, width = request.input_shape
    try:
        mode = mode_for_channels(channels)
        check_input_size((height, width))
    except ValueError as exc:
        raise DataError(f"dataset: {exc}") from None
    split_roots, trees, classes = _class_trees(root)
    index = {name: i for i, name in enumerate(classes)}
    skipped: list[str] = []
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    all_files: list[tuple[Path, int]] = []
    for split, tree in trees.items():
        files = [(f, index[c]) for c in sorted(tree) for f in tree[c]]
        all_files += files
        arrays[split] = _decode_all(files, channels, (height, width), spec.skip_bad_images, skipped)
        for name in classes:
            if name in tree and not (arrays[split][1] == index[name]).any():
                raise DataError(
                    f"{root / ('' if split == 'pool' else split) / name}: every image of class "
                    f"{name!r} was unreadable and skipped; fix the files or remove the class"
                )
    train = arrays["train"] if "train" in arrays else arrays["pool"]
    test, val = arrays.get("test"), arrays.get("val")
    layout = "/".join(split_roots) + " folders" if split_roots else "one pool, seeded split"
    return RawDataset(
        name=root.name,
        source=f"image folder {root} ({len(all_files)} files, {len(classes)} classes, {layout})",
        train_images=train[0],
        train_labels=train[1],
        test_images=None if test is None else test[0],
        test_labels=None if test is None else test[1],
        files=(),
        num_classes=len(classes),
        class_names=tuple(classes),
        val_images=None if val is None else val[0],
        val_labels=None if val is None else val[1],
        skipped=tuple(skipped),
        mean=given_stats(spec.mean),
        std=given_stats(spec.std),
        content_sha256=_digest(all_files, root),
        preprocessing=(
            ("decode", "Pillow"),
            ("color_mode", mode),
            ("resize", f"{RESIZE_METHOD} to {height}x{width} when the size differs"),
        ),
    )
