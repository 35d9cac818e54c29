"""Bringing your own model: factories from files and modules, checkpoints, shape errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from edge_opt.config.loading import build_config
from edge_opt.data.formats.idx import load_raw_dataset
from edge_opt.data.splits import split_dataset
from edge_opt.errors import ConfigError, ModelError
from edge_opt.models.zoo import SmallCNN, build_configured_model, build_model, load_factory
from edge_opt.orchestrate.preflight import check_data_fits_model, preflight

USER_FILE = textwrap.dedent(
    """
    from torch import nn

    def build(width=4, num_classes=10):
        return nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
        )

    not_callable = 3
    """
)


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_net.py"
    path.write_text(USER_FILE)
    return path


def test_factory_from_a_users_file(user_file: Path) -> None:
    built = build_model(factory=f"{user_file}:build", kwargs={"width": 6}, input_shape=(1, 28, 28))
    assert built.label == f"{user_file}:build"
    assert built.model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert built.model[0].out_channels == 6


def test_factory_from_a_module() -> None:
    assert load_factory("edge_opt.models.zoo:SmallCNN") is SmallCNN


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("no_colon", "must look like 'package.module:function'"),
        ("missing/file.py:build", "does not exist"),
        ("edge_opt.models.zoo:nothing_here", "has no callable 'nothing_here'"),
        ("edge_opt.nope:build", "cannot import 'edge_opt.nope'"),
    ],
)
def test_factory_errors_say_what_is_wrong(reference: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_factory(reference)


def test_factory_models_need_an_input_shape(user_file: Path) -> None:
    with pytest.raises(ModelError, match="set model.input_shape"):
        build_model(factory=f"{user_file}:build")


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    trained = SmallCNN().eval()
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": trained.state_dict()}, path)
    loaded = build_model("SmallCNN", checkpoint=path).model.eval()
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(loaded(x), trained(x))


def test_checkpoint_that_does_not_fit_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(SmallCNN(conv1_channels=8).state_dict(), path)
    with pytest.raises(ModelError, match=r"model.checkpoint: .* does not fit the model"):
        build_model("SmallCNN", checkpoint=path)


def test_a_checkpoint_skips_training_unless_epochs_is_set() -> None:
    spec = {"name": "SmallCNN", "checkpoint": "w.pt"}
    assert build_config({"model": spec}).epochs == 0
    assert build_config({"model": spec, "epochs": 2}).epochs == 2


def test_model_spec_needs_exactly_one_source() -> None:
    with pytest.raises(ConfigError, match="give exactly one of `name`"):
        build_config({"model": {"name": "SmallCNN", "factory": "a.b:c"}})
    with pytest.raises(ConfigError, match="model.kwarg: unknown key; did you mean 'kwargs'"):
        build_config({"model": {"name": "SmallCNN", "kwarg": {}}})


def test_input_shape_mismatch_error_text() -> None:
    cfg = build_config(
        {
            "dataset": "mnist",
            "model": {
                "name": "TinyResNet",
                "kwargs": {"in_channels": 3},
                "input_shape": [3, 32, 32],
            },
        }
    )
    built = build_configured_model(cfg)
    splits = split_dataset(load_raw_dataset("mnist"), 100, 50, 50, seed=0)
    with pytest.raises(ModelError) as info:
        check_data_fits_model(splits, built)
    assert str(info.value).startswith(
        "model 'TinyResNet' expects inputs of shape [3, 32, 32] (C, H, W) but dataset 'mnist' "
        "has images of shape [1, 28, 28]"
    )
    assert any("expects inputs of shape [3, 32, 32]" in p for p in preflight(cfg))


def test_synthetic_takes_its_shape_from_the_model() -> None:
    raw = load_raw_dataset("synthetic", synthetic_shape=(3, 32, 32))
    assert raw.train_images.shape[1:] == (3, 32, 32)


def test_class_count_mismatch_is_an_error() -> None:
    built = build_model("SmallCNN", num_classes=5)
    splits = split_dataset(load_raw_dataset("synthetic"), 100, 50, 50, seed=0)
    with pytest.raises(ModelError, match="outputs 5 classes but dataset 'synthetic' has 10"):
        check_data_fits_model(splits, built)
