from __future__ import annotations

import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from edge_opt.analysis.hardware import precision_tradeoff_table, summarize_hardware
from edge_opt.compress.pruning import structured_channel_prune
from edge_opt.models.layers import LAYER_COLUMNS, estimate_layerwise_stats
from edge_opt.models.zoo import SmallCNN
from edge_opt.reports.hardware_files import save_hardware_artifacts

# Hand-computed for SmallCNN on 1x28x28, batch 1:
#   conv1: 16 out x 28 x 28 x (1 in x 3 x 3) = 112,896 MACs; params 16*1*9 + 16 = 160
#   conv2: 32 out x 14 x 14 x (16 in x 3 x 3) = 903,168 MACs; params 32*16*9 + 32 = 4,640
#   classifier: 1568 in x 10 out = 15,680 MACs; params 15,680 + 10 = 15,690
EXPECTED = {
    "conv1": {"output_elements": 16 * 28 * 28, "params": 160, "macs": 112_896},
    "conv2": {"output_elements": 32 * 14 * 14, "params": 4_640, "macs": 903_168},
    "classifier": {"output_elements": 10, "params": 15_690, "macs": 15_680},
}


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("bytes_per_element", [4, 1])
def test_smallcnn_layerwise_matches_hand_computed(batch: int, bytes_per_element: int) -> None:
    df = estimate_layerwise_stats(SmallCNN(), batch, (1, 28, 28), bytes_per_element)
    assert list(df.columns) == LAYER_COLUMNS
    assert list(df.columns[:5]) == [
        "layer",
        "output_elements",
        "parameter_bytes",
        "activation_bytes",
        "macs",
    ]  # the specified columns first
    assert list(df["layer"]) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "classifier"]
    assert (df.loc[~df["kind"].isin(["conv", "linear"]), "macs"] == 0).all()
    for _, row in df[df["kind"].isin(["conv", "linear"])].iterrows():
        exp = EXPECTED[row["layer"]]
        assert row["macs"] == batch * exp["macs"]
        assert row["output_elements"] == batch * exp["output_elements"]
        assert row["activation_bytes"] == batch * exp["output_elements"] * bytes_per_element
        assert row["parameter_bytes"] == exp["params"] * bytes_per_element


def test_elementwise_rows_of_smallcnn() -> None:
    df = estimate_layerwise_stats(SmallCNN(), 1).set_index("layer")
    assert df.loc["relu1", "kind"] == "activation"
    assert df.loc["relu1", "flops"] == 16 * 28 * 28
    assert df.loc["pool1", "output_elements"] == 16 * 14 * 14
    assert df.loc["pool1", "flops"] == 16 * 28 * 28  # one compare per input element
    assert df.loc["conv1", "flops"] == 2 * 112_896


def test_default_bytes_follow_parameter_dtype() -> None:
    df = estimate_layerwise_stats(SmallCNN().half(), 1)
    assert df.loc[df["layer"] == "conv1", "parameter_bytes"].item() == 160 * 2


@pytest.mark.parametrize("level", [0.0, 0.3, 0.7])
def test_macs_equal_flop_counter_over_two(level: float) -> None:
    model = structured_channel_prune(SmallCNN(), level)
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(2, 1, 28, 28))
    assert estimate_layerwise_stats(model, 2)["macs"].sum() * 2 == counter.get_total_flops()


def test_summarize_hardware_formulas() -> None:
    df = pd.DataFrame(
        {
            "layer": ["a", "b"],
            "output_elements": [1, 1],
            "parameter_bytes": [1000, 3000],
            "activation_bytes": [500, 500],
            "macs": [2_000_000, 6_000_000],
        }
    )
    s = summarize_hardware(df, latency_ms=2.0, memory_bandwidth_gbps=4.0, peak_compute_gmacs=8.0)
    assert s["estimated_total_bytes"] == 5000
    assert s["estimated_total_macs"] == 8_000_000
    assert s["achieved_bandwidth_gbps"] == pytest.approx(5000 / 0.002 / 1e9)
    assert s["configured_memory_bandwidth_gbps"] == 4.0
    assert s["bandwidth_utilization"] == pytest.approx(5000 / 0.002 / 1e9 / 4.0)
    assert s["achieved_gmacs"] == pytest.approx(8_000_000 / 0.002 / 1e9)
    assert s["compute_utilization"] == pytest.approx(4.0 / 8.0)


def test_summarize_hardware_clamps_zero_latency_and_bandwidth() -> None:
    df = pd.DataFrame(
        {
            "layer": ["a"],
            "output_elements": [1],
            "parameter_bytes": [1],
            "activation_bytes": [1],
            "macs": [1],
        }
    )
    s = summarize_hardware(df, latency_ms=0.0, memory_bandwidth_gbps=0.0)
    assert s["achieved_bandwidth_gbps"] == pytest.approx(2 / 1e-9 / 1e9)
    assert s["bandwidth_utilization"] == pytest.approx(s["achieved_bandwidth_gbps"] / 1e-9)
    assert "compute_utilization" not in s


def _sweep_rows() -> pd.DataFrame:
    rows = []
    for level, (fp32_lat, int8_lat) in {0.0: (1.0, 0.5), 0.5: (0.8, 0.2)}.items():
        for precision, lat, mem in (("fp32", fp32_lat, 0.08), ("int8", int8_lat, 0.02)):
            rows.append(
                {
                    "pruning_level": level,
                    "precision": precision,
                    "status": "ok",
                    "accuracy": 0.9,
                    "latency_ms": lat,
                    "latency_p50_ms": lat,
                    "memory_mb": mem,
                    "energy_proxy_j": lat * 5e-3,
                    "accepted": precision == "int8",
                }
            )
    rows.append(
        {
            "pruning_level": 0.5,
            "precision": "fp16",
            "status": "failed",
            "accuracy": None,
            "latency_ms": None,
            "latency_p50_ms": None,
            "memory_mb": None,
            "energy_proxy_j": None,
            "accepted": False,
        }
    )
    return pd.DataFrame(rows)


def test_precision_tradeoff_table_ratios_against_fp32_per_level() -> None:
    table = precision_tradeoff_table(_sweep_rows()).set_index("precision")
    assert set(table.index) == {"fp32", "int8"}  # the failed fp16 row is not averaged
    assert table.loc["int8", "latency_p50_ratio_vs_fp32"] == pytest.approx((0.5 + 0.25) / 2)
    assert table.loc["int8", "size_ratio_vs_fp32"] == pytest.approx(0.25)
    assert table.loc["int8", "accepted_ratio"] == 1.0
    assert table.loc["fp32", "accepted_ratio"] == 0.0


def test_save_hardware_artifacts_writes_files_at_180_dpi(tmp_path) -> None:
    df = estimate_layerwise_stats(SmallCNN(), 1)
    out = tmp_path / "new" / "dir"
    paths = save_hardware_artifacts(
        out, df, precision_tradeoff_table(_sweep_rows()), summarize_hardware(df, 0.1, 35.0)
    )
    names = {p.name for p in paths}
    assert names == {
        "layerwise_breakdown.csv",
        "precision_tradeoffs.csv",
        "hardware_summary.csv",
        "layerwise_activation_memory.png",
        "layerwise_macs.png",
    }
    assert pd.read_csv(out / "layerwise_breakdown.csv", encoding="utf-8")["macs"].sum() == 1_031_744
    with Image.open(out / "layerwise_macs.png") as img:
        assert round(img.info["dpi"][0]) == 180
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files
