"""Hostile inputs (issue 20): each is a real file of the kind a hostile tester made, refused in
one line naming the file and the limit before anything of the size it claims is allocated, or
decoded faithfully (16-bit PNGs, integral float labels). Limits are lowered where the real
attack would take more than a second to build."""

from __future__ import annotations

import gzip
import io
import os
import re
import struct
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_opt.config.loading import build_config
from edge_opt.data.formats import base, load_dataset
from edge_opt.data.formats.idx import read_idx
from edge_opt.data.imaging import ImageDecodeError, decode_image
from edge_opt.errors import DataError


def spec(**values):
    return build_config({"dataset": values}).dataset


def peak_bytes(call: Callable[[], object]) -> tuple[BaseException | None, int]:
    """What ``call`` raised and the peak bytes Python and numpy allocated while it ran."""
    tracemalloc.start()
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 (returned to the test to check)
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return None, peak


def _refused(call: Callable[[], object], pattern: str, max_peak: int) -> str:
    exc, peak = peak_bytes(call)
    assert isinstance(exc, DataError), exc
    message = str(exc)
    assert "\n" not in message
    assert re.search(pattern, message), message
    assert peak < max_peak, f"allocated {peak:,} bytes"
    return message


# ---------------------------------------------------------------------------------------- npz
def _npz(path: Path, compressed: bool = False, **arrays: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    base_arrays = {
        "x_train": rng.integers(0, 255, (20, 8, 8), dtype=np.uint8),
        "y_train": np.arange(20) % 2,
        "x_test": rng.integers(0, 255, (10, 8, 8), dtype=np.uint8),
        "y_test": np.arange(10) % 2,
    }
    base_arrays.update(arrays)
    (np.savez_compressed if compressed else np.savez)(path, **base_arrays)
    return path


def test_npz_uint64_label_2_63_is_refused_before_counting_classes(tmp_path) -> None:
    labels = (np.arange(20) % 2).astype(np.uint64)
    labels[3] = 2**63
    path = _npz(tmp_path / "d.npz", y_train=labels)
    _refused(
        lambda: load_dataset(spec(format="npz", path=str(path))),
        r"d\.npz\[y_train\]: label 9223372036854775808 \(at index 3\) implies "
        r"9,223,372,036,854,775,809 classes, more than the 100,000-class limit \(MAX_CLASSES\)",
        max_peak=2**20,
    )


def test_npz_zip_bomb_is_refused_from_the_zip_directory(tmp_path, monkeypatch) -> None:
    zeros = np.zeros((512, 256, 256), np.uint8)  # 32 MiB of zeros: a ~32 KiB member
    path = _npz(tmp_path / "bomb.npz", compressed=True, x_train=zeros, y_train=np.zeros(512, int))
    del zeros
    assert path.stat().st_size < 2**20
    monkeypatch.setattr(base, "MAX_ARRAY_BYTES", 8 * 2**20)
    _refused(
        lambda: load_dataset(spec(format="npz", path=str(path))),
        r"bomb\.npz\[x_train\]: 32\.0 MiB once decompressed, bringing the file to 32\.\d MiB, "
        r"more than the 8\.0 MiB limit \(MAX_ARRAY_BYTES\)",
        max_peak=4 * 2**20,
    )


def test_npz_header_claiming_a_terabyte_is_refused_unread(tmp_path) -> None:
    path = tmp_path / "liar.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 1000, 1000)}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x_train.npy", header.getvalue() + bytes(64))
    _refused(
        lambda: load_dataset(spec(format="npz", path=str(path))),
        r"liar\.npz\[x_train\]: 931\.3 GiB once decompressed.* more than the 4\.0 GiB limit",
        max_peak=2**20,
    )


def test_npz_fifo_is_refused_unopened(tmp_path, deadline) -> None:
    os.mkfifo(tmp_path / "pipe.npz")
    with pytest.raises(DataError, match=r"pipe\.npz is a FIFO \(named pipe\), not a regular file"):
        load_dataset(spec(format="npz", path=str(tmp_path / "pipe.npz")))


# ---------------------------------------------------------------------------------------- IDX
def _idx_bytes(code: int, dims: tuple[int, ...], data: bytes) -> bytes:
    header = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + data


def test_gz_idx_bomb_is_refused_from_its_header(tmp_path, monkeypatch) -> None:
    stream = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip of a 64 MiB IDX file of zeros
    chunks = [stream.compress(_idx_bytes(0x08, (64, 1024, 1024), b""))]
    chunks += [stream.compress(bytes(2**20)) for _ in range(64)] + [stream.flush()]
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(b"".join(chunks))
    monkeypatch.setattr(base, "MAX_ARRAY_BYTES", 8 * 2**20)
    _refused(
        lambda: read_idx(path),
        r"bomb-idx3-ubyte\.gz: IDX header says shape \(64, 1024, 1024\) \(64\.0 MiB\), more "
        r"than the 8\.0 MiB limit per file \(MAX_ARRAY_BYTES\)",
        max_peak=2**20,
    )


def test_gz_idx_trailing_data_and_truncation_are_refused(tmp_path) -> None:
    payload = _idx_bytes(0x08, (2, 2, 2), bytes(range(8)))
    trailing = tmp_path / "t-idx3-ubyte.gz"
    trailing.write_bytes(gzip.compress(payload + b"extra"))
    with pytest.raises(DataError, match=r"more data follows the 8 bytes its IDX header declares"):
        read_idx(trailing)
    garbage = tmp_path / "g-idx3-ubyte.gz"
    garbage.write_bytes(gzip.compress(payload) + b"garbage!")
    with pytest.raises(DataError, match=r"g-idx3-ubyte\.gz: the gzip file is corrupt"):
        read_idx(garbage)
    short = tmp_path / "s-idx3-ubyte.gz"
    short.write_bytes(gzip.compress(payload[:-3]))
    with pytest.raises(DataError, match=r"has 5 data bytes; the file is truncated or corrupt"):
        read_idx(short)
    good = tmp_path / "ok-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(payload))
    np.testing.assert_array_equal(read_idx(good), np.arange(8, dtype=np.uint8).reshape(2, 2, 2))


def _float_idx_dir(directory: Path, pixels: np.ndarray) -> Path:
    directory.mkdir()
    labels = (np.arange(len(pixels)) % 2).astype(np.uint8)
    files = {
        "train-images-idx3-ubyte": _idx_bytes(0x0D, pixels.shape, pixels.astype(">f4").tobytes()),
        "train-labels-idx1-ubyte": _idx_bytes(0x08, labels.shape, labels.tobytes()),
        "t10k-images-idx3-ubyte": _idx_bytes(0x0D, pixels.shape, pixels.astype(">f4").tobytes()),
        "t10k-labels-idx1-ubyte": _idx_bytes(0x08, labels.shape, labels.tobytes()),
    }
    for name, content in files.items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(content))
    return directory


def test_float_idx_pixels_of_1e30_are_refused(tmp_path) -> None:
    pixels = np.random.default_rng(0).uniform(0, 255, (6, 4, 4))
    fine = load_dataset(spec(format="idx", path=str(_float_idx_dir(tmp_path / "ok", pixels))))
    np.testing.assert_allclose(fine.train_images[:, 0], pixels, rtol=1e-6)  # 0..255 kept
    pixels[2, 1, 1] = 1e30
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte\.gz: pixel values 0\.\d+\.\.1e\+30 lie outside 0\.\.255, "
        r"the IDX pixel scale",
    ):
        load_dataset(spec(format="idx", path=str(_float_idx_dir(tmp_path / "bad", pixels))))


# -------------------------------------------------------------------------------- image files
def _png(path: Path, value: int = 0, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)
    return path


def _folder(root: Path) -> Path:
    _png(root / "a" / "0.png", 10)
    _png(root / "a" / "1.png", 20)
    _png(root / "b" / "0.png", 200)
    _png(root / "b" / "1.png", 210)
    return root


@pytest.mark.parametrize("skip_bad_images", [False, True])
def test_fifo_in_image_folder_is_refused_unopened(tmp_path, deadline, skip_bad_images) -> None:
    root = _folder(tmp_path / "imgs")
    os.mkfifo(root / "b" / "pipe.png")
    folder = spec(format="imagefolder", path=str(root), skip_bad_images=skip_bad_images)
    with pytest.raises(
        DataError,
        match=r"b/pipe\.png is a FIFO \(named pipe\), not a regular file; class folders hold "
        r"image files only: remove it",
    ):
        load_dataset(folder, (1, 16, 16))


def test_symlink_to_dev_zero_is_refused_even_with_skip_bad_images(tmp_path) -> None:
    root = _folder(tmp_path / "imgs")
    (root / "a" / "zero.png").symlink_to("/dev/zero")
    _refused(
        lambda: load_dataset(
            spec(format="imagefolder", path=str(root), skip_bad_images=True), (1, 16, 16)
        ),
        r"a/zero\.png \(it resolves to /dev/zero\) is a character device, not a regular file",
        max_peak=2**20,
    )
    with pytest.raises(ImageDecodeError, match=r"zero\.png \(it resolves to /dev/zero\)"):
        decode_image(root / "a" / "zero.png", 1, (16, 16))


def test_image_file_past_the_byte_limit_is_named_or_skipped(tmp_path, monkeypatch) -> None:
    root = _folder(tmp_path / "imgs")
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noisy).save(root / "b" / "big.png")  # ~4 KiB, the others < 100 bytes
    monkeypatch.setattr(base, "MAX_IMAGE_FILE_BYTES", 1024)
    with pytest.raises(
        DataError,
        match=r"big\.png: 4\.\d KiB \(4,\d+ bytes\), more than the 1\.0 KiB limit "
        r"\(MAX_IMAGE_FILE_BYTES per image\).*skip_bad_images",
    ):
        load_dataset(spec(format="imagefolder", path=str(root)), (1, 16, 16))
    raw = load_dataset(
        spec(format="imagefolder", path=str(root), skip_bad_images=True), (1, 16, 16)
    )
    assert raw.skipped == (str(root / "b" / "big.png"),)


def _grey_png_bomb(path: Path, width: int, height: int) -> Path:
    """A real 8-bit grey PNG of width x height black pixels, written without ever holding them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    stream = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then the row's pixels
    idat = b"".join(stream.compress(row) for _ in range(height)) + stream.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


def test_png_past_the_pixel_limit_is_refused_from_its_header(tmp_path) -> None:
    bomb = _grey_png_bomb(tmp_path / "bomb.png", 8500, 8500)  # 72 MP (69 MiB decoded), ~70 KiB
    assert bomb.stat().st_size < 2**20
    exc, peak = peak_bytes(lambda: decode_image(bomb, 1, (28, 28)))
    assert isinstance(exc, ImageDecodeError)
    assert str(exc) == (
        f"{bomb}: 8500x8500 = 72,250,000 pixels, more than the 67,108,864 edge-opt decodes per "
        "image (MAX_IMAGE_PIXELS); downscale the image"
    )
    assert peak < 4 * 2**20


def test_16_bit_png_decodes_by_bit_depth_like_its_8_bit_version(tmp_path) -> None:
    eight = np.random.default_rng(0).integers(0, 4, (16, 16), dtype=np.uint8)  # nearly black
    sixteen = eight.astype(np.uint16) * 257 + np.uint16(100)  # the same scene, 16-bit
    Image.fromarray(eight).save(tmp_path / "eight.png")
    Image.fromarray(sixteen).save(tmp_path / "sixteen.png")
    assert Image.open(tmp_path / "sixteen.png").mode == "I;16"
    from_eight = decode_image(tmp_path / "eight.png", 1, (16, 16))
    from_sixteen = decode_image(tmp_path / "sixteen.png", 1, (16, 16))
    np.testing.assert_array_equal(from_sixteen, from_eight)  # round(v / 257): +100 rounds off
    assert int(from_sixteen.max()) == 3  # not stretched to the image's own maximum
    darkest = np.arange(256, dtype=np.uint16).reshape(16, 16)  # 16-bit 0..255: all but black
    Image.fromarray(darkest).save(tmp_path / "darkest.png")
    decoded = decode_image(tmp_path / "darkest.png", 3, (16, 16))
    np.testing.assert_array_equal(decoded[0], (darkest >= 129).astype(np.uint8))


# ------------------------------------------------------------------------------------ factory
FACTORIES = """
import torch
from torch.utils.data import Dataset

class Items(Dataset):
    def __init__(self, n, labels=None, shape=(1, 28, 28)):
        self.n, self.labels, self.shape = n, labels, shape
    def __len__(self):
        return self.n
    def __getitem__(self, i):
        label = self.labels[i] if self.labels is not None else i % 2
        return torch.zeros(self.shape), label

def huge():
    return Items(10**12), Items(4)

def wide():
    return Items(10**6, shape=(1, 64, 64)), Items(4)

def floaty():
    return Items(4, labels=[0, 1, 0.9, 1]), Items(4)

def whole_floats():
    return Items(4, labels=[0.0, 1.0, torch.tensor(0), torch.tensor(1.0)]), Items(4)
"""


@pytest.fixture
def factories(tmp_path) -> str:
    module = tmp_path / "hostile_data.py"
    module.write_text(FACTORIES)
    return str(module)


def test_factory_len_of_10_12_is_refused_before_reading(factories) -> None:
    _refused(
        lambda: load_dataset(spec(factory=f"{factories}:huge")),
        r"dataset\.factory '.*:huge' train: len\(\) is 1,000,000,000,000, more than the "
        r"10,000,000 images edge-opt reads per split \(MAX_IMAGES\)",
        max_peak=2**20,
    )


def test_factory_images_past_the_byte_limit_are_refused_after_item_0(factories) -> None:
    _refused(
        lambda: load_dataset(spec(factory=f"{factories}:wide")),
        r"dataset\.factory '.*:wide' train: 1,000,000 images of shape \[1, 64, 64\] float32 take "
        r"15\.3 GiB, more than the 4\.0 GiB left of the 4\.0 GiB limit \(MAX_ARRAY_BYTES\)",
        max_peak=2**20,
    )


def test_factory_float_labels_are_refused_not_truncated(factories) -> None:
    with pytest.raises(
        DataError,
        match=r"dataset\.factory '.*:floaty' train\[2\]: label 0\.9 is not an integer class index",
    ):
        load_dataset(spec(factory=f"{factories}:floaty"))
    raw = load_dataset(spec(factory=f"{factories}:whole_floats"))
    np.testing.assert_array_equal(raw.train_labels, [0, 1, 0, 1])
