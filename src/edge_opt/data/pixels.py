"""One split's images as the source's 8-bit pixels, normalised batch by batch through a table.

A normalised split in float32 takes four bytes per pixel: Fashion-MNIST's 70,000 images are
220 MB that a run holds from its first stage to its last. Kept as uint8 they are 55 MB; what
each of the 256 pixel values normalises to is a table of 256 float32 per channel, computed by
the very expression that normalises a whole split (``(pixel / divisor - mean) / std``, in
float32), so a looked-up batch holds the same float32 values, bit for bit, as the rows of the
split normalised at once. Looking a batch up (``np.take``) costs less than indexing the float32
rows did (55,000 images in batches of 128: 0.04 s against 0.07 s a pass, measured).

Images that are not 8-bit (an npz of floats, a factory's tensors) are stored normalised in
float32 as before (``table`` None).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

Index = int | slice | list[int] | np.ndarray | torch.Tensor

# Images hashed at a time by ``update_digest`` (4,096 Fashion-MNIST images: 12.8 MB of float32).
HASH_CHUNK = 4096


class SplitImages(Dataset):
    """A split's (image, label) pairs: normalised float32 images (C, H, W), int64 labels.

    Reads like the ``TensorDataset`` it replaces: ``split[i]`` is one pair and ``split[list]``
    (what ``batch_loader`` asks for) a whole batch in one call. ``images(index)`` gives only
    the images, ``labels`` every label.

    Args:
        pixels: (N, C, H, W): uint8 pixels with ``table``, or images already normalised
            (float32) without it.
        labels: (N,) int64.
        table: (1 or C, 256) float32: row c is what channel c's pixel values 0..255 normalise
            to (one row: every channel alike).

    Raises:
        ValueError: pixels that are not uint8 with a table, a table that is not (1 or C, 256)
            float32, or a label count that differs from the image count.
    """

    def __init__(
        self, pixels: np.ndarray | torch.Tensor, labels: torch.Tensor, table: np.ndarray | None
    ) -> None:
        if len(pixels) != len(labels):
            raise ValueError(
                f"labels: {len(labels)} labels for {len(pixels)} images; give one label per image"
            )
        if table is not None:
            _check_table(pixels, table)
            self.pixels: Any = np.asarray(pixels)
        else:
            self.pixels = torch.as_tensor(pixels)
        self.labels = labels
        self.table = table

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: Index) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images(index), self.labels[index]

    def images(self, index: Index = slice(None)) -> torch.Tensor:
        """The normalised float32 images at ``index`` (an int, a slice, a list or an array of
        indices): a new tensor, as indexing the normalised split's tensor would give."""
        if self.table is None:
            return self.pixels[index]
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        return torch.from_numpy(_look_up(self.table, self.pixels[index]))

    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``TensorDataset``'s attribute: the whole split normalised (a float32 copy, four bytes
        per pixel; for small data and tests; batches come from ``images(index)``)."""
        return self.images(), self.labels

    def update_digest(self, digest: hashlib._Hash) -> None:
        """Feed ``digest`` the bytes of the normalised float32 images, then of the int64
        labels: the bytes of ``tensors``, without a float32 copy of the whole split."""
        for start in range(0, len(self), HASH_CHUNK):
            digest.update(self.images(slice(start, start + HASH_CHUNK)).contiguous().numpy())
        digest.update(self.labels.contiguous().numpy())


def _check_table(pixels: np.ndarray | torch.Tensor, table: np.ndarray) -> None:
    channels = int(pixels.shape[1]) if pixels.ndim == 4 else -1
    if str(pixels.dtype) not in ("uint8", "torch.uint8"):
        raise ValueError(f"pixels: dtype {pixels.dtype} with a lookup table; give uint8 pixels")
    if table.dtype != np.float32 or table.ndim != 2 or table.shape[1] != 256:
        raise ValueError(f"table: {table.dtype} {table.shape}; give float32 (1 or C, 256)")
    if table.shape[0] not in (1, channels):
        raise ValueError(
            f"table: {table.shape[0]} rows for images of shape {tuple(pixels.shape)}; give one "
            "row, or one per channel"
        )


def _look_up(table: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """``pixels`` (N, C, H, W) or (C, H, W) through ``table``'s row for each channel."""
    if table.shape[0] == 1:
        return np.take(table[0], pixels)
    axis = pixels.ndim - 3
    planes = [np.take(table[c], np.take(pixels, c, axis=axis)) for c in range(table.shape[0])]
    return np.stack(planes, axis=axis)
