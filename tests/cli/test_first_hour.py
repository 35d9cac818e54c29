"""A newcomer's first hour (issue 20, item 7): what `run` refuses, `validate` refuses first,
and a run that failed before making anything leaves nothing that demands --resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_opt.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_validate_refuses_a_model_whose_classes_are_not_the_datasets(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "dataset: mnist\nmodel: {name: SmallCNN, num_classes: 7}\nval_subset: 500\n"
        "test_subset: 1000\n"
    )
    proc = cli("validate", str(config))
    assert proc.returncode == 1
    assert "outputs 7 classes but dataset" in proc.stderr
    assert "set model.num_classes: 10" in proc.stderr


def test_validate_refuses_a_subset_larger_than_the_images(tmp_path: Path) -> None:
    proc = cli("validate", "configs/quick.yaml", "--set", "val_subset=100000")
    assert proc.returncode == 1
    assert "val_subset: 100000 leaves no training images" in proc.stderr


def test_a_run_refused_on_its_data_can_be_rerun_without_flags(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = cli("run", "configs/quick.yaml", "-o", str(out), "--set", "val_subset=100000")
    assert first.returncode == 1
    assert json.loads((out / "run_status.json").read_text())["status"] == "failed"
    second = cli("run", "configs/quick.yaml", "-o", str(out), "--set", "val_subset=100000")
    assert second.returncode == 1
    assert "val_subset: 100000" in second.stderr  # the data again, not "pass --resume"
    assert "--resume" not in second.stderr
