"""Dataset formats, one module each behind a registry (``data.formats.registry``): ``idx``
(IDX files, the MNIST sample, synthetic), ``imagefolder``, ``npz`` and ``factory``; plugins add
more. ``load_dataset`` turns the config's ``dataset`` (a name or a mapping) into a checked
``RawDataset``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edge_opt.data.formats.base import LoadRequest, RawDataset
from edge_opt.data.formats.registry import DATASET_FORMATS, DatasetFormatSpec

if TYPE_CHECKING:
    from edge_opt.config.sections import DatasetSpec

__all__ = [
    "DATASET_FORMATS",
    "DatasetFormatSpec",
    "LoadRequest",
    "RawDataset",
    "dataset_format",
    "load_dataset",
]


def dataset_format(dataset: str | DatasetSpec) -> str:
    """The registered format that reads ``dataset`` (a name is read by ``idx``)."""
    if isinstance(dataset, str):
        return "idx"
    return dataset.format or "factory"


def load_dataset(
    dataset: str | DatasetSpec,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    data_dir: str | Path | None = None,
) -> RawDataset:
    """Read the configured dataset.

    Args:
        dataset: a name (``mnist``, ``fashion-mnist``, ``synthetic``) or a ``DatasetSpec``.
        input_shape: the model's (C, H, W): image folders are converted and resized to it,
            ``synthetic`` takes it.
        data_dir: where a named dataset's IDX files are (names only).

    Raises:
        DataError: one line naming the file, folder or array at fault and the fix.
    """
    loader = DATASET_FORMATS.get(dataset_format(dataset)).load_loader()
    return loader(dataset, LoadRequest(tuple(input_shape), data_dir))  # type: ignore[no-any-return]
