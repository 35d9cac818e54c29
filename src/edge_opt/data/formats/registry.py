"""The dataset formats edge-opt reads: one entry per name, with the facts the config checks.
Importing this module imports neither torch nor a format's own libraries (Pillow, ...).

A format's ``loader`` (``"module:function"``, imported when a run reads data) takes the
config's ``dataset`` mapping (a ``DatasetSpec``) and a ``LoadRequest`` and returns a checked
``RawDataset`` (``data.formats.base``). Plugins add formats through the ``edge_opt.datasets``
entry-point group (``docs/extending.md``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_opt.errors import DataError
from edge_opt.infra.registry import Registry, check_name


@dataclass(frozen=True)
class DatasetFormatSpec:
    """Everything a dataset format's name implies.

    Attributes:
        name: what ``dataset: {format: NAME, path: ...}`` says.
        loader: ``"module:function"`` returning a ``RawDataset``.
        description: one line for the docs.
        takes_path: the format reads ``dataset.path`` (False: ``factory``, which builds its
            own data).
        takes_kwargs: ``dataset.kwargs`` are passed on to it.
        decodes_images: it decodes image files (``skip_bad_images`` applies).
        names_classes: its classes are named by the data itself (image folders' sub-folder
            names): ``class_names`` in the config would contradict it.
    """

    name: str
    loader: str
    description: str = ""
    takes_path: bool = True
    takes_kwargs: bool = False
    decodes_images: bool = False
    names_classes: bool = False

    def __post_init__(self) -> None:
        check_name("dataset format", self.name)

    def load_loader(self) -> Callable[..., Any]:
        module, _, attr = self.loader.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as exc:
            raise DataError(
                f"dataset format {self.name!r}: cannot load its reader {self.loader} "
                f"({type(exc).__name__}: {exc})"
            ) from None


DATASET_FORMATS: Registry[DatasetFormatSpec] = Registry(
    "dataset format", DataError, group="edge_opt.datasets", entry_type=DatasetFormatSpec
)
for _spec in (
    DatasetFormatSpec(
        "idx",
        "edge_opt.data.formats.idx:load_idx",
        "the four IDX files of MNIST's layout, in a folder (any classes)",
    ),
    DatasetFormatSpec(
        "imagefolder",
        "edge_opt.data.formats.imagefolder:load_imagefolder",
        "class sub-folders of image files (PNG, JPEG, ...), split seeded",
        decodes_images=True,
        names_classes=True,
    ),
    DatasetFormatSpec(
        "npz",
        "edge_opt.data.formats.npz:load_npz",
        "numpy arrays x_train, y_train, x_test, y_test (and optionally x_val, y_val)",
    ),
    DatasetFormatSpec(
        "factory",
        "edge_opt.data.formats.factory:load_factory_dataset",
        "your function returning torch Datasets (dataset: {factory: 'pkg.mod:fn'})",
        takes_path=False,
        takes_kwargs=True,
    ),
):
    DATASET_FORMATS.add(_spec)


def path_formats() -> list[str]:
    """The formats a ``dataset: {format: ..., path: ...}`` mapping may name."""
    return [n for n in DATASET_FORMATS.names() if DATASET_FORMATS.get(n).takes_path]
