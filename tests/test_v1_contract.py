"""edge-opt v1's documented API (DESIGN.md's public API table), called exactly as documented.

Every call here uses the documented positional/keyword names, so code written against the
seed keeps working. Each test pins a specific truth (a formula, a count, an invariant).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from edge_opt.config import ExperimentConfig, dump_config, load_config
from edge_opt.data import build_loaders
from edge_opt.errors import (
    ConfigError,
    DataError,
    EdgeOptError,
    MeasurementError,
    ModelError,
    PruningError,
)
from edge_opt.experiments import pareto_frontier, run_sweep, train_model
from edge_opt.hardware import (
    LayerEstimate,
    estimate_layerwise_stats,
    precision_tradeoff_table,
    save_hardware_artifacts,
    summarize_hardware,
)
from edge_opt.metrics import collect_metrics
from edge_opt.model import SmallCNN
from edge_opt.orchestrate.multiseed import per_seed_config
from edge_opt.profiling import (
    HardwareProfile,
    auto_adjust_batch_size,
    compute_utilization,
    estimate_batch_memory_mb,
)
from edge_opt.pruning import structured_channel_prune

SMALLCNN_MACS_BATCH_1 = 112_896 + 903_168 + 15_680  # conv1 + conv2 + classifier = 1,031,744
SMALLCNN_PARAMETERS = 160 + 4_640 + 15_690  # = 20,490
DOCUMENTED_SWEEP_COLUMNS = [
    "precision",
    "accuracy",
    "latency_ms",
    "memory_mb",
    "energy_proxy_j",
    "accepted",
]


@pytest.fixture(scope="module")
def seed_loaders() -> tuple[DataLoader, DataLoader]:
    return build_loaders(
        dataset_name="synthetic",
        batch_size=32,
        train_subset=128,
        val_subset=64,
        seed=0,
        num_workers=0,
    )


# ------------------------------------------------------------------- errors are ValueErrors
@pytest.mark.parametrize(
    "error", [ConfigError, DataError, ModelError, MeasurementError, PruningError]
)
def test_input_errors_are_value_errors_and_edge_opt_errors(error: type[Exception]) -> None:
    assert issubclass(error, ValueError)
    assert issubclass(error, EdgeOptError)


def test_load_config_out_of_range_pruning_level_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("pruning_levels: [1.2]\n")
    with pytest.raises(ValueError, match=r"pruning_levels\.0: 1\.2 is outside \[0, 1\)"):
        load_config(path)


def test_cli_still_prints_one_line_per_problem_for_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("pruning_levels: [1.2]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "edge_opt.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert proc.returncode == 1
    assert "pruning_levels.0: 1.2 is outside [0, 1)" in proc.stderr
    assert "Traceback" not in proc.stderr


# -------------------------------------------------------------------------------- config
def test_load_config_resolves_dataloader_seed_to_seed(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("seed: 11\ndataset: synthetic\n")
    cfg = load_config(path)
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.dataloader_seed == 11
    assert isinstance(cfg.dataloader_seed, int)
    assert cfg.effective_dataloader_seed == 11
    resolved = yaml.safe_load(dump_config(cfg))  # what config_resolved.yaml holds
    assert resolved["dataloader_seed"] == 11
    assert load_config(_write(tmp_path / "again.yaml", resolved)) == cfg


def test_explicit_dataloader_seed_is_kept(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path / "cfg.yaml", {"seed": 11, "dataloader_seed": 3}))
    assert (cfg.seed, cfg.dataloader_seed, cfg.effective_dataloader_seed) == (11, 3, 3)
    assert ExperimentConfig().dataloader_seed == ExperimentConfig().seed == 7


def test_multi_seed_config_leaves_the_shuffle_to_each_run(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path / "cfg.yaml", {"seeds": [1, 2]}))
    assert cfg.dataloader_seed == cfg.seed  # an int, never None
    # each run's own seed decides its shuffle, so the multi-seed file pins no number
    assert yaml.safe_load(dump_config(cfg))["dataloader_seed"] is None


@pytest.mark.parametrize(("given", "expected"), [({}, [1, 2]), ({"dataloader_seed": 5}, [5, 5])])
def test_each_seed_run_shuffles_with_its_seed_unless_one_is_given(
    tmp_path: Path, given: dict, expected: list[int]
) -> None:
    cfg = load_config(_write(tmp_path / "cfg.yaml", {"seeds": [1, 2], **given}))
    runs = [per_seed_config(cfg, s, tmp_path / f"seed_{s}") for s in (1, 2)]
    assert [run.dataloader_seed for run in runs] == expected
    assert [yaml.safe_load(dump_config(run))["dataloader_seed"] for run in runs] == expected


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


# ---------------------------------------------------------------------------- data, model
def test_build_loaders_synthetic_sizes(seed_loaders) -> None:
    train_loader, val_loader = seed_loaders
    assert len(train_loader.dataset) == 128
    assert len(val_loader.dataset) == 64
    images, labels = next(iter(val_loader))
    assert tuple(images.shape) == (32, 1, 28, 28)
    assert labels.dtype == torch.int64


def test_smallcnn_parameters_and_macs() -> None:
    model = SmallCNN(conv1_channels=16, conv2_channels=32, num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == SMALLCNN_PARAMETERS == 20_490
    layers = estimate_layerwise_stats(model, 1)
    assert layers["macs"].sum() == SMALLCNN_MACS_BATCH_1 == 1_031_744
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_train_model_returns_a_trained_copy(seed_loaders) -> None:
    train_loader, _ = seed_loaders
    torch.manual_seed(0)
    model = SmallCNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained = train_model(model, train_loader, epochs=1, learning_rate=1e-3, device="cpu")
    assert trained is not model
    assert not trained.training
    for key, value in model.state_dict().items():  # the caller's model is untouched
        assert torch.equal(value, before[key])
    assert not torch.equal(trained.conv1.weight, model.conv1.weight)


# --------------------------------------------------------------------------------- Pareto
def test_pareto_frontier_keeps_no_dominated_point() -> None:
    df = pd.DataFrame(
        {
            "candidate_id": ["a", "b", "c", "d", "e", "f"],
            "latency_ms": [1.0, 2.0, 2.0, 3.0, 4.0, 0.5],
            "accuracy": [0.80, 0.85, 0.90, 0.88, 0.95, 0.99],
            "accepted": [True, True, True, True, True, False],
        }
    )
    front = pareto_frontier(df, "latency_ms")
    assert list(front["candidate_id"]) == ["a", "c", "e"]  # f is rejected, b and d dominated
    accepted = df[df["accepted"]]
    for _, kept in front.iterrows():
        dominators = accepted[
            (accepted["latency_ms"] <= kept["latency_ms"])
            & (accepted["accuracy"] >= kept["accuracy"])
            & (
                (accepted["latency_ms"] < kept["latency_ms"])
                | (accepted["accuracy"] > kept["accuracy"])
            )
        ]
        assert dominators.empty


# -------------------------------------------------------------------------------- pruning
class ThreeChannelNet(nn.Module):
    """A conv net for 3x28x28 inputs that declares no input_shape."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class Needs32x32Net(nn.Module):
    """A 3-channel net whose classifier only fits 32x32 inputs (and says nothing about it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def test_structured_channel_prune_smallcnn() -> None:
    pruned = structured_channel_prune(SmallCNN(), 0.5)
    assert (pruned.conv1.out_channels, pruned.conv2.out_channels) == (8, 16)
    assert pruned.classifier.in_features == 16 * 7 * 7


def test_structured_channel_prune_infers_three_channel_input() -> None:
    model = ThreeChannelNet()
    pruned = structured_channel_prune(model, 0.5)
    assert (pruned.conv1.in_channels, pruned.conv1.out_channels) == (3, 4)
    assert (pruned.conv2.out_channels, pruned.fc.in_features) == (8, 8)
    assert pruned(torch.zeros(2, 3, 28, 28)).shape == (2, 10)
    assert model.conv1.out_channels == 8  # the caller's model is untouched


def test_structured_channel_prune_says_what_to_pass_when_shape_unknown() -> None:
    with pytest.raises(ValueError, match=r"example_inputs=torch\.zeros\(1, 3, H, W\)") as info:
        structured_channel_prune(Needs32x32Net(), 0.5)
    assert isinstance(info.value, PruningError)
    assert "[3, 28, 28]" in str(info.value)  # the shape it tried
    pruned = structured_channel_prune(
        Needs32x32Net(), 0.5, example_inputs=torch.zeros(1, 3, 32, 32)
    )
    assert pruned.conv.out_channels == 4


# -------------------------------------------------------------------------------- metrics
def test_collect_metrics_as_documented(seed_loaders) -> None:
    _, val_loader = seed_loaders
    result = collect_metrics(SmallCNN(), val_loader, "cpu", 5.0, "fp32", 2.0, 5)
    assert 0.0 <= result.accuracy <= 1.0
    assert result.latency_ms > 0
    assert result.latency_std_ms >= 0
    assert result.latency_p50_ms <= result.latency_p95_ms
    assert result.throughput_sps > 0
    assert result.memory_mb == pytest.approx(result.model_size_bytes / 2**20)
    assert result.energy_proxy_j == pytest.approx(result.latency_ms / 1000 * 5.0)
    assert result.latency_ms_scaled == pytest.approx(2.0 * result.latency_ms)


def test_collect_metrics_empty_loader_is_a_value_error_naming_it() -> None:
    empty = DataLoader(
        TensorDataset(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.int64)), batch_size=8
    )
    with pytest.raises(ValueError, match=r"val_loader: the loader has no batches \(0 samples\)"):
        collect_metrics(
            model=SmallCNN(),
            val_loader=empty,
            device="cpu",
            power_watts=5.0,
            precision="fp32",
            latency_multiplier=1.0,
            benchmark_repeats=5,
        )


# ------------------------------------------------------------------------------- hardware
def test_estimate_layerwise_stats_and_summarize_hardware_formulas() -> None:
    layers = estimate_layerwise_stats(SmallCNN(), batch_size=2, input_shape=(1, 28, 28))
    assert set(LayerEstimate.__dataclass_fields__) <= set(layers.columns)
    assert layers["macs"].sum() == 2 * SMALLCNN_MACS_BATCH_1
    assert layers["parameter_bytes"].sum() == 4 * SMALLCNN_PARAMETERS
    conv1 = layers.set_index("layer").loc["conv1"]
    assert conv1["activation_bytes"] == 2 * 16 * 28 * 28 * 4

    summary = summarize_hardware(layers, latency_ms=2.0, memory_bandwidth_gbps=10.0)
    total_bytes = layers["parameter_bytes"].sum() + layers["activation_bytes"].sum()
    assert summary["estimated_total_bytes"] == total_bytes
    assert summary["estimated_total_macs"] == 2 * SMALLCNN_MACS_BATCH_1
    assert summary["achieved_bandwidth_gbps"] == pytest.approx(total_bytes / 0.002 / 1e9)
    assert summary["configured_memory_bandwidth_gbps"] == 10.0
    assert summary["bandwidth_utilization"] == pytest.approx(total_bytes / 0.002 / 1e9 / 10.0)
    assert summary["achieved_gmacs"] == pytest.approx(2 * SMALLCNN_MACS_BATCH_1 / 0.002 / 1e9)
    clamped = summarize_hardware(layers, 0.0, 10.0)  # latency_s = max(0, 1e-9)
    assert clamped["achieved_bandwidth_gbps"] == pytest.approx(total_bytes / 1e-9 / 1e9)


def _documented_sweep() -> pd.DataFrame:
    rows = [
        ("fp32", 0.90, 2.0, 0.08, 0.010, False),
        ("fp32", 0.88, 1.0, 0.04, 0.005, False),
        ("int8", 0.89, 1.5, 0.02, 0.0075, True),
        ("int8", 0.87, 0.5, 0.01, 0.0025, True),
    ]
    return pd.DataFrame(rows, columns=DOCUMENTED_SWEEP_COLUMNS)


def test_precision_tradeoff_table_needs_only_documented_columns(tmp_path: Path) -> None:
    table = precision_tradeoff_table(_documented_sweep()).set_index("precision")
    assert list(table.index) == ["int8", "fp32"]  # sorted by mean latency
    assert table.loc["int8", "latency_ms_mean"] == pytest.approx(1.0)
    assert table.loc["int8", "latency_ratio_vs_fp32"] == pytest.approx(1.0 / 1.5)
    assert table.loc["int8", "size_ratio_vs_fp32"] == pytest.approx(0.015 / 0.06)
    assert table.loc["int8", "accepted_ratio"] == 1.0
    assert table.loc["fp32", "candidates"] == 2
    assert math.isnan(table.loc["int8", "latency_p50_ratio_vs_fp32"])  # no p50 column given

    layers = estimate_layerwise_stats(SmallCNN(), 1)
    summary = summarize_hardware(layers, 1.0, 10.0)
    out = tmp_path / "hw"
    paths = save_hardware_artifacts(out, layers, table.reset_index(), summary)
    assert {p.name for p in paths} >= {"precision_tradeoffs.csv", "hardware_summary.csv"}
    written = pd.read_csv(out / "precision_tradeoffs.csv")
    assert list(written["precision"]) == ["int8", "fp32"]
    saved = pd.read_csv(out / "hardware_summary.csv").iloc[0]
    assert saved["achieved_gmacs"] == pytest.approx(summary["achieved_gmacs"])


def test_precision_tradeoff_table_names_a_missing_documented_column() -> None:
    with pytest.raises(KeyError, match="energy_proxy_j"):
        precision_tradeoff_table(_documented_sweep().drop(columns=["energy_proxy_j"]))


# ------------------------------------------------------------------------------ profiling
def test_profiling_helpers() -> None:
    assert estimate_batch_memory_mb(32, 784, 4) == pytest.approx(32 * 784 * 4 / 2**20)
    # 256 x 784 x 4 B = 0.77 MB > 0.5 MB; 128 x 784 x 4 B = 0.38 MB fits
    assert auto_adjust_batch_size(256, 784, 0.5, 4) == 128
    with pytest.raises(EdgeOptError, match="memory_limit_mb"):
        auto_adjust_batch_size(8, 784, 1e-6, 4)
    assert compute_utilization(1.0, 4.0) == 0.25
    assert compute_utilization(5.0, 4.0) == 1.0
    assert compute_utilization(1.0, 0.0) == 0.0


def test_hardware_profile_knee() -> None:
    from edge_opt.profiling import Figure

    profile = HardwareProfile(
        name="toy",
        description="toy device",
        memory_bandwidth_gbps=Figure(4.0, "assumed"),
        peak_gmacs={"fp32": Figure(24.0, "assumed"), "int8": Figure(48.0, "assumed")},
        l1d_kib=Figure(32, "datasheet"),
        l2_kib=Figure(1024, "datasheet"),
        l3_kib=Figure(0, "datasheet"),
        active_power_watts=Figure(6.0, "assumed"),
        idle_power_watts=Figure(2.0, "assumed"),
    )
    assert profile.knee_macs_per_byte("int8") == 12.0
    assert profile.peak("bf16") == 24.0  # an unlisted dtype runs at the fp32 rate


# -------------------------------------------------------------------------------- run_sweep
@pytest.fixture(scope="module")
def seed_sweep_inputs():
    train, val = build_loaders("synthetic", 64, 256, 128, 0, 0)
    model = train_model(SmallCNN(), train, 1, 2e-3, "cpu")
    return model, val


def _seed_run_sweep(model, val, budgets, active):  # type: ignore[no-untyped-def]
    return run_sweep(
        base_model=model,
        val_loader=val,
        calibration_loader=val,
        device="cpu",
        pruning_levels=[0.0, 0.5],
        precisions=["fp32", "int8"],
        power_watts=5.0,
        calibration_batches=2,
        memory_budgets_mb=budgets,
        active_memory_budget_mb=active,
        latency_multiplier=1.0,
        benchmark_repeats=10,
    )


def test_run_sweep_with_exactly_the_documented_arguments(seed_sweep_inputs) -> None:
    model, val = seed_sweep_inputs
    # The active budget need not be a listed one: rejected = memory_mb > active budget.
    df = _seed_run_sweep(model, val, [1.0], 0.03)
    assert list(df["candidate_id"]) == [
        "p00-fp32-eager",
        "p00-int8-eager",
        "p50-fp32-eager",
        "p50-int8-eager",
    ]
    assert (df["status"] == "ok").all()
    assert df["accepted"].tolist() == (df["memory_mb"] <= 0.03).tolist()
    assert df["accepted"].any()
    assert not df["accepted"].all()
    assert not df["violates_1mb"].any()  # one flag per listed budget
    for column in DOCUMENTED_SWEEP_COLUMNS:
        assert column in df.columns
    # int8 is real int8: its serialized size is well under its fp32 twin's.
    sizes = df.set_index("candidate_id")["model_size_bytes"]
    assert sizes["p00-int8-eager"] < 0.4 * sizes["p00-fp32-eager"]


def test_run_sweep_with_nothing_accepted_gives_an_empty_frontier(seed_sweep_inputs) -> None:
    model, val = seed_sweep_inputs
    df = _seed_run_sweep(model, val, [0.001], 0.001)
    assert not df["accepted"].any()
    assert pareto_frontier(df, "latency_ms").empty
