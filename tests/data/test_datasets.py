"""Dataset formats: image folders, npz arrays, IDX paths and factories see the same images and
labels; strict one-line errors; skip_bad_images; RGB folders; per-class accuracy."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_opt.analysis.per_class import per_class_accuracy, per_class_markdown, per_class_rows
from edge_opt.config.loading import build_config
from edge_opt.data.formats import load_dataset
from edge_opt.data.formats.idx import SYSTEM_DATASET_DIRS, load_raw_dataset
from edge_opt.data.formats.registry import DATASET_FORMATS
from edge_opt.data.splits import split_dataset
from edge_opt.errors import ConfigError, DataError
from edge_opt.orchestrate.baseline import data_fingerprint

N_TRAIN, N_TEST = 150, 60


@pytest.fixture(scope="module")
def real_arrays() -> dict[str, np.ndarray]:
    """Real images: Fashion-MNIST when the system package is there, else the MNIST sample.
    Sorted stably by label, the order an image folder reads them in (class, then file name)."""
    system = SYSTEM_DATASET_DIRS["fashion-mnist"]
    raw = load_raw_dataset("fashion-mnist" if system.is_dir() else "mnist", None)
    # Evenly spaced indices: the MNIST sample is stored sorted by label, so its first
    # images are all zeros; a fixed stride takes every class from either source.
    pick = np.linspace(0, len(raw.train_labels) - 1, N_TRAIN + N_TEST).round().astype(int)
    pick = np.random.default_rng(0).permutation(pick)  # both splits get every class
    x = raw.train_images[pick, 0]
    y = raw.train_labels[pick]
    out = {}
    for split, sl in (("train", slice(0, N_TRAIN)), ("test", slice(N_TRAIN, None))):
        order = np.argsort(y[sl], kind="stable")
        out[f"x_{split}"], out[f"y_{split}"] = x[sl][order], y[sl][order]
    out["class_names"] = np.asarray(raw.names())
    return out


def write_folder(root: Path, arrays: dict[str, np.ndarray], names: list[str]) -> Path:
    for split in ("train", "test"):
        for i, (image, label) in enumerate(
            zip(arrays[f"x_{split}"], arrays[f"y_{split}"], strict=True)
        ):
            folder = root / split / names[int(label)].replace("/", "-")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(folder / f"{i:05d}.png")
    return root


def write_idx(directory: Path, arrays: dict[str, np.ndarray]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stems = {
        "x_train": "train-images-idx3-ubyte",
        "y_train": "train-labels-idx1-ubyte",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels-idx1-ubyte",
    }
    for key, stem in stems.items():
        a = arrays[key].astype(np.uint8)
        header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
        (directory / f"{stem}.gz").write_bytes(gzip.compress(header + a.tobytes()))
    return directory


def spec(**values):
    return build_config({"dataset": values}).dataset


def test_imagefolder_npz_and_idx_see_the_same_images_and_labels(tmp_path, real_arrays) -> None:
    # Folder names sort in label order only for digits; map by name to compare.
    names = [str(n).replace("/", "-") for n in real_arrays["class_names"]]
    folder = write_folder(tmp_path / "folder", real_arrays, names)
    np.savez(tmp_path / "data.npz", **{k: v for k, v in real_arrays.items() if k != "class_names"})
    idx_dir = write_idx(tmp_path / "idx", real_arrays)
    shape = (1, 28, 28)
    from_npz = load_dataset(spec(format="npz", path=str(tmp_path / "data.npz")), shape)
    from_idx = load_dataset(spec(format="idx", path=str(idx_dir)), shape)
    from_folder = load_dataset(spec(format="imagefolder", path=str(folder)), shape)
    # Folder labels follow sorted folder names: translate them back to the source labels.
    to_source = np.array([names.index(n) for n in from_folder.class_names])
    for split in ("train", "test"):
        want_x = real_arrays[f"x_{split}"][:, None]
        want_y = real_arrays[f"y_{split}"]
        for raw in (from_npz, from_idx):
            np.testing.assert_array_equal(getattr(raw, f"{split}_images"), want_x)
            np.testing.assert_array_equal(getattr(raw, f"{split}_labels"), want_y)
        folder_y = to_source[getattr(from_folder, f"{split}_labels")]
        order = np.argsort(folder_y, kind="stable")  # folders sort by name, not by label
        np.testing.assert_array_equal(getattr(from_folder, f"{split}_images")[order], want_x)
        np.testing.assert_array_equal(folder_y[order], want_y)
    # Same arrays, same seeded splits, same normalised tensors: one data fingerprint.
    a = split_dataset(from_npz, None, 30, None, seed=3)
    b = split_dataset(from_idx, None, 30, None, seed=3)
    assert data_fingerprint(a) == data_fingerprint(b)
    assert (a.mean, a.std) == (b.mean, b.std)
    assert from_folder.num_classes == 10
    assert len(set(from_folder.class_names)) == 10
    assert from_folder.content_sha256 is not None


def test_a_changed_image_changes_the_fingerprint(tmp_path, real_arrays) -> None:
    names = [str(i) for i in range(10)]
    folder = write_folder(tmp_path / "f", real_arrays, names)
    s = spec(format="imagefolder", path=str(folder))
    before = split_dataset(load_dataset(s), None, 30, None, seed=1)
    victim = sorted((folder / "train").rglob("*.png"))[0]
    Image.fromarray(255 - np.asarray(Image.open(victim)), "L").save(victim)
    after = split_dataset(load_dataset(s), None, 30, None, seed=1)
    assert data_fingerprint(before) != data_fingerprint(after)


def make_rgb_folder(root: Path, per_class: int = 4, size: int = 40) -> Path:
    rng = np.random.default_rng(0)
    for c, colour in enumerate(((200, 30, 30), (30, 200, 30))):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            noise = rng.integers(0, 40, size=(size, size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / f"{i}.png")
    return root


def test_rgb_folder_into_three_and_one_channel_models(tmp_path) -> None:
    folder = make_rgb_folder(tmp_path / "rgb")
    rgb = load_dataset(spec(format="imagefolder", path=str(folder)), (3, 32, 32))
    assert rgb.train_images.shape == (8, 3, 32, 32)  # resized 40 -> 32
    assert rgb.class_names == ("class_0", "class_1")
    red = rgb.train_images[rgb.train_labels == 0]
    assert (red[:, 0].mean() > red[:, 1].mean() + 100).all()  # channel order kept (R first)
    grey = load_dataset(spec(format="imagefolder", path=str(folder)), (1, 28, 28))
    assert grey.train_images.shape == (8, 1, 28, 28)
    # A grey image into an RGB model: the one channel repeated three times.
    (folder / "class_0" / "grey.png").unlink(missing_ok=True)
    Image.fromarray(np.full((40, 40), 77, np.uint8), "L").save(folder / "class_0" / "grey.png")
    again = load_dataset(spec(format="imagefolder", path=str(folder)), (3, 40, 40))
    assert again.train_images.shape[0] == 9
    assert (again.train_images[4] == 77).all()  # "grey.png" sorts after 0..3.png in class_0


def test_corrupt_png_is_named_or_skipped_and_counted(tmp_path) -> None:
    folder = make_rgb_folder(tmp_path / "rgb")
    good = (folder / "class_1" / "0.png").read_bytes()
    bad = folder / "class_1" / "broken.png"
    bad.write_bytes(good[: len(good) // 2])  # truncated PNG
    with pytest.raises(DataError, match=r"broken\.png: not a readable image.*skip_bad_images"):
        load_dataset(spec(format="imagefolder", path=str(folder)), (3, 32, 32))
    raw = load_dataset(
        spec(format="imagefolder", path=str(folder), skip_bad_images=True), (3, 32, 32)
    )
    assert raw.skipped == (str(bad),)
    assert len(raw.train_images) == 8
    splits = split_dataset(raw, None, 2, 2, seed=0)
    assert splits.describe()["skipped_images"] == 1
    assert any("1 unreadable image(s) skipped" in w for w in splits.warnings)


def _folder_with(tmp_path: Path, layout: dict[str, bytes | None]) -> Path:
    root = tmp_path / "data"
    png = (make_rgb_folder(tmp_path / "src", 1) / "class_0" / "0.png").read_bytes()
    for rel, content in layout.items():
        path = root / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(png if content == b"png" else content)
    root.mkdir(exist_ok=True)
    return root


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"a/x.png": b"png", "b": None}, r"data/b: class folder 'b' holds no images"),
        ({"a/x.png": b"png"}, r"has one class \('a'\); a classifier needs at least 2"),
        (
            {"a/x.png": b"png", "b/y.png": b"png", "b/notes.txt": b"hi"},
            r"b/notes\.txt: not an image",
        ),
        ({"a/x.png": b"png", "b/y.png": b"png", "b/sub/z.png": b"png"}, r"b/sub: a folder inside"),
        ({"train/a/x.png": b"png", "train/b/y.png": b"png"}, r"has train/ but no test/"),
        ({}, r"has no class sub-folders"),
        (
            {"train/a/x.png": b"png", "train/b/y.png": b"png", "test/c/z.png": b"png"},
            r"test/c: class 'c' is not among the training classes",
        ),
    ],
)
def test_imagefolder_strict_errors(tmp_path, layout, message) -> None:
    root = _folder_with(tmp_path, layout)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(spec(format="imagefolder", path=str(root)), (3, 32, 32))
    assert "\n" not in str(info.value)


def test_missing_path_is_one_line(tmp_path) -> None:
    for fmt in ("imagefolder", "npz", "idx"):
        with pytest.raises(DataError, match=r"dataset\.path: .*missing.* does not exist"):
            load_dataset(spec(format=fmt, path=str(tmp_path / "missing")))


def _npz(tmp_path: Path, **arrays) -> str:
    rng = np.random.default_rng(0)
    base = {
        "x_train": rng.integers(0, 255, (20, 28, 28), dtype=np.uint8),
        "y_train": np.arange(20) % 10,
        "x_test": rng.integers(0, 255, (10, 28, 28), dtype=np.uint8),
        "y_test": np.arange(10) % 10,
    }
    base.update(arrays)
    path = tmp_path / "d.npz"
    np.savez(path, **{k: v for k, v in base.items() if v is not None})
    return str(path)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y_train": np.arange(19) % 10}, r"\[y_train\]: expected 20 labels .* got shape \(19,\)"),
        ({"y_test": np.full(10, -1)}, r"\[y_test\]: label -1 \(at index 0\) is outside"),
        ({"y_test": None}, r"missing array\(s\) y_test"),
        (
            {"x_train": np.full((20, 28, 28), 2.0)},
            r"\[x_train\]: float pixels must lie in \[0, 1\]",
        ),
        ({"x_train": np.zeros((20, 3, 28, 3))}, r"cannot tell the channel axis"),
        ({"y_train": np.zeros(20)}, r"\[y_train\]: labels must be integers"),
        (
            {"x_test": np.zeros((10, 32, 32), np.uint8)},
            r"\[x_test\]: images of shape \[1, 32, 32\]",
        ),
    ],
)
def test_npz_strict_errors(tmp_path, arrays, message) -> None:
    with pytest.raises(DataError, match=message):
        load_dataset(spec(format="npz", path=_npz(tmp_path, **arrays)))


def test_npz_layouts_dtypes_and_given_class_names(tmp_path) -> None:
    rng = np.random.default_rng(1)
    nhwc = rng.random((20, 8, 8, 3)).astype(np.float32)
    path = _npz(
        tmp_path,
        x_train=nhwc,
        x_test=nhwc[:10],
        y_test=np.arange(10) % 3,
        y_train=np.arange(20) % 3,
    )
    raw = load_dataset(spec(format="npz", path=path, class_names=["a", "b", "c"]), (3, 8, 8))
    np.testing.assert_array_equal(raw.train_images, nhwc.transpose(0, 3, 1, 2))
    assert (raw.pixel_divisor, raw.num_classes, raw.class_names) == (1.0, 3, ("a", "b", "c"))
    splits = split_dataset(raw, None, 5, None, seed=0)
    assert splits.input_shape == (3, 8, 8)
    corrupt = tmp_path / "bad.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"bad\.npz: not an \.npz file"):
        load_dataset(spec(format="npz", path=str(corrupt)))


def test_given_mean_and_std_per_channel(tmp_path) -> None:
    folder = make_rgb_folder(tmp_path / "rgb")
    s = spec(format="imagefolder", path=str(folder), mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0])
    raw = load_dataset(s, (3, 32, 32))
    splits = split_dataset(raw, None, 2, 2, seed=0)
    x = splits.train.tensors[0].numpy()
    assert splits.mean == (0.5, 0.5, 0.5)
    # Undoing each channel's own (mean, std) gives back whole 8-bit pixel values.
    for c, sd in enumerate((0.25, 0.5, 1.0)):
        pixels = (x[:, c] * sd + 0.5) * 255
        np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-3)
    wrong = (x[:, 0] * 1.0 + 0.5) * 255  # channel 0 undone with channel 2's std
    assert not np.allclose(wrong, np.round(wrong), atol=1e-3)
    bad = spec(format="imagefolder", path=str(folder), mean=[0.5, 0.5], std=[1.0, 1.0])
    with pytest.raises(DataError, match=r"dataset\.mean: \[0\.5, 0\.5\] has 2 values .* 3 channel"):
        split_dataset(load_dataset(bad, (3, 32, 32)), None, 2, 2, seed=0)


def test_factory_datasets_are_read_into_arrays(tmp_path) -> None:
    module = tmp_path / "my_data.py"
    module.write_text(
        "import torch\n"
        "from torch.utils.data import TensorDataset\n"
        "def build(n=12):\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.rand(n, 1, 28, 28, generator=g)\n"
        "    y = torch.arange(n) % 2\n"
        "    train = TensorDataset(x, y)\n"
        "    train.classes = ['cat', 'dog']\n"
        "    return {'train': train, 'test': TensorDataset(x[:4], y[:4])}\n"
        "def broken():\n"
        "    return 42\n"
    )
    raw = load_dataset(spec(factory=f"{module}:build", kwargs={"n": 10}))
    assert raw.train_images.shape == (10, 1, 28, 28)
    assert raw.pixel_divisor == 1.0
    assert raw.class_names == ("cat", "dog")
    with pytest.raises(DataError, match=r"dataset\.factory .*:broken' returned int"):
        load_dataset(spec(factory=f"{module}:broken"))
    with pytest.raises(DataError, match=r"dataset\.factory: .* has no callable 'nope'"):
        load_dataset(spec(factory=f"{module}:nope"))


def test_registry_and_config_errors() -> None:
    assert set(DATASET_FORMATS.names()) == {"idx", "imagefolder", "npz", "factory"}
    cases = {
        "bad_key": ({"format": "npz", "path": "x", "colour": 1}, "dataset.colour: unknown key"),
        "both": ({"format": "npz", "path": "x", "factory": "a:b"}, "exactly one of `format`"),
        "skip": ({"format": "npz", "path": "x", "skip_bad_images": True}, "skip_bad_images: only"),
        "half": ({"format": "npz", "path": "x", "mean": 0.5}, "give both or neither"),
        "type": (5, "dataset: got 5; write a dataset name"),
    }
    for value, message in cases.values():
        with pytest.raises(ConfigError) as info:
            build_config({"dataset": value})
        assert any(message in p for p in info.value.problems), info.value.problems
    with pytest.raises(ConfigError, match="data_dir"):
        build_config({"dataset": {"format": "npz", "path": "x"}, "data_dir": "/tmp"})
    cfg = build_config({"dataset": {"format": "imagefolder", "path": "d", "skip_bad_images": True}})
    assert build_config(cfg.to_dict()).dataset == cfg.dataset  # round-trips through YAML dicts


def test_per_class_accuracy_counts() -> None:
    rows = per_class_accuracy([0, 1, 1, 2, 0], [0, 1, 2, 2, 1], ["a", "b", "c", "d"])
    assert [(r.images, r.correct) for r in rows] == [(1, 1), (2, 1), (2, 1), (0, 0)]
    assert rows[1].accuracy == 0.5
    assert rows[3].accuracy is None
    table = per_class_rows(
        ["a", "b"],
        np.array([0, 0, 1, 1]),
        ("ref", np.array([0, 0, 1, 1])),
        ("c", np.array([0, 1, 1, 1])),
    )
    assert [r["accuracy_change"] for r in table] == [-0.5, 0.0]
    text = "\n".join(per_class_markdown([{**table[0], "class_name": "a|b"}, table[1]]))
    assert "| a\\|b | 2 | 1.0000 | 0.5000 | -0.5000 |" in text
    assert "Hurt most: a|b (-0.5000)." in text
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        per_class_accuracy([0, 1, 1], [0, 1], ["a", "b"])
