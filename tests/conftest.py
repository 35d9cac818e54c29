from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

# Ray reads these when it is first imported, so they are set here, before any test module can
# import it: token authentication on (a fresh token for this session's clusters), and loopback
# addresses kept as given (Ray otherwise rewrites 127.0.0.1 to the host's outward address).
# Every process of a test cluster inherits them.
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import pytest
import torch

from edge_opt.compress.training import train_model
from edge_opt.data.formats.idx import make_synthetic
from edge_opt.data.splits import Loaders, make_loaders, split_dataset
from edge_opt.models.zoo import SmallCNN

warnings.filterwarnings("ignore", category=DeprecationWarning)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def cache_secret_dir(tmp_path_factory):
    """The cache's secret for this session (``EDGE_OPT_SECRET_DIR``, inherited by every child
    process and Ray worker), never the user's ``~/.config/edge-opt``."""
    folder = tmp_path_factory.mktemp("secret")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGE_OPT_SECRET_DIR", str(folder))
        yield folder


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


@pytest.fixture(scope="session")
def small_run(tmp_path_factory) -> Path:
    """One small real run (MNIST sample, 2 levels x fp32/int8, eager) for the report tests,
    for a Raspberry Pi 4 target (measured here, projected there); the pruned level is
    recovered by distillation in 2 steps (one fine-tuning epoch per level)."""
    out = tmp_path_factory.mktemp("small_run") / "run"
    fast = [
        "epochs=1",
        "fine_tune_epochs=1",
        "recovery.distillation=true",
        "recovery.steps=2",
        "benchmark_repeats=20",
        "benchmark_trials=1",
        "benchmark_max_rounds=2",
        "benchmark_instances=1",
        "throughput_repeats=2",
        "measure_peak_rss=false",
        "device=raspberry-pi-4",
        "latency_budget_ms=33.3",
    ]
    args = [sys.executable, "-m", "edge_opt.cli", "run", "configs/quick.yaml", "-o", str(out)]
    for item in fast:
        args += ["--set", item]
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the small run failed: {proc.stderr[-2000:]}")
    return out


@pytest.fixture
def deadline() -> Iterator[None]:
    """A test that would block forever (a FIFO opened for reading) fails after 10 s instead."""

    def expired(signum, frame):
        raise TimeoutError("blocked for 10 s: something opened a FIFO")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(10)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
