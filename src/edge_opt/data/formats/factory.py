"""``{factory: "pkg.mod:fn", kwargs: {...}}``: your code returns torch Datasets.

The function returns ``(train, test)``, ``(train, val, test)`` or a mapping with keys
``train``, ``test`` and optionally ``val``; each a sized, indexable torch ``Dataset`` whose
items are ``(image, label)`` with the image a tensor or array (C, H, W) or (H, W), uint8 or
float in [0, 1]. Class names: ``class_names`` in the config, else the train dataset's
``classes`` attribute (as torchvision datasets have), else the label numbers. The datasets
are read once into arrays, within ``MAX_IMAGES`` per split and ``MAX_ARRAY_BYTES`` in all
(checked from ``len()`` and the first image, before reading the rest). Labels are integers
(``3`` or ``3.0``; ``0.9`` is refused, never truncated). **A factory runs code**: only use
configs whose code you trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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
from edge_opt.infra.stop import call_user_code, user_code
from edge_opt.infra.usercode import exception_line, load_callable

if TYPE_CHECKING:
    from edge_opt.config.sections import DatasetSpec


def _splits(value: Any, ref: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"train", "val", "test"})
        if unknown or "train" not in value or "test" not in value:
            raise DataError(
                f"dataset.factory {ref!r} returned a mapping with keys {sorted(value)}; "
                "return {'train': ..., 'test': ...} (optionally 'val')"
            )
        return dict(value)
    if isinstance(value, tuple | list) and len(value) in (2, 3):
        keys = ("train", "test") if len(value) == 2 else ("train", "val", "test")
        return dict(zip(keys, value, strict=True))
    raise DataError(
        f"dataset.factory {ref!r} returned {type(value).__name__}; return (train, test), "
        "(train, val, test) or a mapping with those keys, each a torch Dataset"
    )


def _length(dataset: Any, where: str) -> int:
    """``len(dataset)``, within 1..MAX_IMAGES (checked before any item is read)."""
    try:
        count = len(dataset)
    except TypeError:
        raise DataError(
            f"{where}: {type(dataset).__name__} has no len(); return a map-style Dataset"
        ) from None
    except OverflowError:  # __len__ beyond sys.maxsize
        count = -1
    if count < 0 or count > base.MAX_IMAGES:
        shown = f"{count:,}" if count >= 0 else "beyond sys.maxsize"
        raise DataError(
            f"{where}: len() is {shown}, more than the {base.MAX_IMAGES:,} images edge-opt "
            "reads per split (MAX_IMAGES); return a smaller dataset (e.g. a torch Subset)"
        )
    if count == 0:
        raise DataError(f"{where}: the dataset is empty")
    return count


def _label(value: Any, where: str) -> int:
    """A label as a class index: an integer, or a float equal to one (never truncated)."""
    if hasattr(value, "item"):  # a torch tensor or numpy scalar/array of one element
        try:
            value = value.item()
        except (ValueError, RuntimeError):
            raise DataError(
                f"{where}: the label holds {getattr(value, 'shape', '?')} values; a label is "
                "one integer class index"
            ) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise DataError(
            f"{where}: label {value!r} is not an integer class index; return int labels "
            "0..K-1 (a float is refused, not truncated)"
        )
    if not 0 <= value < base.MAX_CLASSES:
        raise DataError(
            f"{where}: label {value} is not a class index 0..K-1 with K at most "
            f"{base.MAX_CLASSES:,} (MAX_CLASSES); return labels 0..K-1"
        )
    return int(value)


def _to_arrays(dataset: Any, where: str, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (image, label) item of a map-style dataset, stacked; the images within ``budget``
    bytes (from len() and the first image, before the rest is read)."""
    import torch

    count = _length(dataset, where)
    images, labels = [], []
    for i in range(count):
        try:
            with user_code(f"{where}[{i}]", DataError):
                item = dataset[i]
            image, label = item
        except DataError:
            raise
        except (Exception, SystemExit) as exc:
            detail = " ".join(str(exc).split())[:200]
            raise DataError(
                f"{where}[{i}]: reading the item failed ({type(exc).__name__}: {detail}); items "
                "must be (image, label) pairs"
            ) from None
        array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if array.ndim == 2:
            array = array[None]
        if i == 0 and count * array.nbytes > budget:
            raise DataError(
                f"{where}: {count:,} images of shape {list(array.shape)} {array.dtype} take "
                f"{format_bytes(count * array.nbytes)}, more than the {format_bytes(budget)} left "
                f"of the {format_bytes(base.MAX_ARRAY_BYTES)} limit (MAX_ARRAY_BYTES); return "
                "fewer or smaller images"
            )
        if array.shape != (images[0].shape if images else array.shape):
            raise DataError(
                f"{where}[{i}]: image of shape {list(array.shape)}, but item 0 is "
                f"{list(images[0].shape)}; every image must have one shape (C, H, W)"
            )
        images.append(array)
        labels.append(_label(label, f"{where}[{i}]"))
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_factory_dataset(spec: DatasetSpec, request: LoadRequest) -> RawDataset:
    """Call the factory and read its datasets into arrays.

    Raises:
        DataError: the factory cannot be imported, raises, or returns something else than
            described above; images or labels that do not fit (naming split and index).
    """
    ref = str(spec.factory)
    build = load_callable(ref, "dataset.factory", DataError)
    try:
        returned = call_user_code(f"dataset.factory {ref!r}", DataError, build, **spec.kwargs)
    except DataError:
        raise
    except (Exception, SystemExit) as exc:
        raise DataError(f"dataset.factory {ref!r} failed: {exception_line(exc)}") from None
    parts = _splits(returned, ref)
    images: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    divisors = set()
    budget = base.MAX_ARRAY_BYTES
    for split, dataset in parts.items():
        where = f"dataset.factory {ref!r} {split}"
        x, labels[split] = _to_arrays(dataset, where, budget)
        budget -= x.nbytes
        check_images(x, where, ndim=4)
        images[split], divisor = unit_images(x, where)
        divisors.add(divisor)
    if len(divisors) > 1:
        raise DataError(f"dataset.factory {ref!r}: mix of uint8 and float images across splits")
    names = tuple(spec.class_names or ())
    if not names and isinstance(getattr(parts["train"], "classes", None), list | tuple):
        names = tuple(str(c) for c in parts["train"].classes)
    wheres = {f"dataset.factory {ref!r} {split}": y for split, y in labels.items()}
    num_classes = count_classes(wheres, names)
    for split in parts:
        check_labels(labels[split], len(images[split]), num_classes, f"dataset.factory {split}")
    return RawDataset(
        name=ref.rpartition(":")[2],
        source=f"dataset factory {ref}",
        train_images=images["train"],
        train_labels=labels["train"],
        test_images=images["test"],
        test_labels=labels["test"],
        files=(),
        num_classes=num_classes,
        class_names=names,
        val_images=images.get("val"),
        val_labels=labels.get("val"),
        pixel_divisor=divisors.pop(),
        mean=given_stats(spec.mean),
        std=given_stats(spec.std),
    )
