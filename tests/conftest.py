from __future__ import annotations

import warnings

import pytest
import torch

from edge_opt.data import Loaders, make_loaders, make_synthetic, split_dataset
from edge_opt.experiments import train_model
from edge_opt.model import SmallCNN

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="session")
def synthetic_splits():
    raw = make_synthetic(n_train=600, n_test=200, seed=3)
    return split_dataset(raw, train_subset=None, val_subset=200, test_subset=None, seed=3)


@pytest.fixture(scope="session")
def loaders(synthetic_splits) -> Loaders:
    return make_loaders(synthetic_splits, batch_size=50, seed=3, num_workers=0)


@pytest.fixture(scope="session")
def trained_cnn(loaders) -> SmallCNN:
    torch.manual_seed(0)
    return train_model(SmallCNN(), loaders.train, epochs=2, learning_rate=2e-3, seed=0)


@pytest.fixture
def calibration(synthetic_splits) -> list[torch.Tensor]:
    images = synthetic_splits.train.tensors[0]
    return [images[i : i + 50] for i in range(0, 200, 50)]
