"""Fault injection on the real CLI: signals at several stages, a second run, a file-size limit.

After each fault: nothing already published is lost, every JSON/CSV in the run directory
parses, the status says what happened, and ``--resume`` completes with the same accuracies
and weights as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

EDGE_OPT = Path(sys.executable).parent / "edge-opt"
CONFIG = """\
seed: 3
dataset: synthetic
train_subset: 512
val_subset: 128
test_subset: 128
batch_size: 64
epochs: 1
fine_tune_epochs: 1
pruning_levels: [0.0, 0.5]
precisions: [fp32, int8]
runtimes: {runtimes}
benchmark_warmup: 5
benchmark_repeats: 20
benchmark_trials: 1
benchmark_max_rounds: 2
throughput_repeats: 2
measure_peak_rss: false
memory_budgets_mb: [1.0]
active_memory_budget_mb: 1.0
device: raspberry-pi-4
"""
pytestmark = pytest.mark.slow


def _config(folder: Path, runtimes: str = "[eager]") -> Path:
    path = folder / "tiny.yaml"
    path.write_text(CONFIG.format(runtimes=runtimes))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200"}


def _run(*args: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run(
        [str(EDGE_OPT), *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
        preexec_fn=limit,
    )


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(EDGE_OPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _status(out: Path) -> dict:
    try:
        return json.loads((out / "run_status.json").read_text())
    except (OSError, ValueError):
        return {}


def _wait_for_stage(proc: subprocess.Popen[str], out: Path, stage: str, cached: int = 0) -> None:
    """Until the run reports ``stage`` (and holds ``cached`` candidate cache entries)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        entries = list((out / ".edge-opt" / "cache" / "candidate").glob("*/meta.json"))
        if _status(out).get("stage") == stage and len(entries) >= cached:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {stage}: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"stage {stage} never came")


def _check_every_file_parses(out: Path) -> None:
    for path in out.rglob("*.json"):
        json.loads(path.read_text())
    for path in out.rglob("*.csv"):
        pd.read_csv(path)
    assert not list(out.rglob("*.tmp")), "a half-written temporary file was left"


def _accuracies(out: Path) -> dict[str, float]:
    frame = pd.read_csv(out / "sweep_results.csv")
    return dict(zip(frame["candidate_id"], frame["accuracy"], strict=True))


def _weights(out: Path) -> dict[str, str]:
    """sha256 of the trained weights: the baseline checkpoint and every pruned variant.

    (Which candidates get exported depends on their timing, which a resumed run measures anew.)
    """
    files = json.loads((out / "manifest.json").read_text())["files"]
    return {
        k: v
        for k, v in files.items()
        if k == "models/baseline_fp32.pt" or k.startswith("models/variants/")
    }


def _onnx_files(out: Path) -> dict[str, str]:
    files = json.loads((out / "manifest.json").read_text())["files"]
    return {k: v for k, v in files.items() if k.endswith(".onnx")}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """One uninterrupted run of each config (eager; eager + ONNX Runtime)."""
    folder = tmp_path_factory.mktemp("reference")
    runs = {}
    for name, runtimes in (("eager", "[eager]"), ("ort", "[eager, onnxruntime]")):
        (folder / name).mkdir()
        config = _config(folder / name, runtimes)
        proc = _run("run", str(config), "-o", str(folder / name / "out"))
        assert proc.returncode == 0, proc.stderr
        runs[name] = folder / name / "out"
    return runs["eager"], runs["ort"]


def test_sigkill_while_preparing_then_resume_reuses_work(reference, tmp_path: Path) -> None:
    _, ref = reference
    config = _config(tmp_path, "[eager, onnxruntime]")
    out = tmp_path / "out"
    proc = _start("run", str(config), "-o", str(out))
    _wait_for_stage(proc, out, "preparing", cached=3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert _status(out)["status"] == "running"  # what a SIGKILL leaves ...
    resumed_hint = _run("report", str(out))  # ... is read as interrupted by everyone
    assert resumed_hint.returncode == 1
    assert "interrupted during preparing" in resumed_hint.stderr
    assert "--resume" in resumed_hint.stderr
    assert not (out / "report.md").exists()  # nothing half-done was published
    _check_every_file_parses(out)

    proc = _run("run", str(config), "-o", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert _status(out)["status"] == "complete"
    assert _accuracies(out) == _accuracies(ref)
    assert _weights(out) == _weights(ref)  # checkpoint and variants: the same bytes
    assert len(_weights(out)) == 3
    ours, theirs = _onnx_files(out), _onnx_files(ref)
    for name in ours.keys() & theirs.keys():  # an exported ONNX file: the same bytes
        assert ours[name] == theirs[name]
    rows = pd.read_csv(out / "sweep_results.csv")
    assert rows["prepared_from_cache"].sum() >= 3
    assert not (out / ".edge-opt" / "tmp").exists()
    assert not (out / ".edge-opt" / "staging").exists()
    _check_every_file_parses(out)


@pytest.mark.parametrize(
    ("sig", "stage"), [(signal.SIGTERM, "training"), (signal.SIGINT, "timing")]
)
def test_sigterm_and_sigint_stop_cleanly_and_resume(
    reference, tmp_path: Path, sig: int, stage: str
) -> None:
    ref, _ = reference
    config = _config(tmp_path)
    out = tmp_path / "out"
    proc = _start("run", str(config), "-o", str(out))
    _wait_for_stage(proc, out, stage)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert f"interrupted during {stage}" in stderr
    assert f"resume with: edge-opt run {config} -o {out} --resume" in stderr
    assert "Traceback" not in stderr
    status = _status(out)
    assert status["status"] == "interrupted"
    assert status["stage"] == stage
    assert not (out / ".edge-opt" / "tmp").exists()
    _check_every_file_parses(out)
    proc = _run("run", str(config), "-o", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert _accuracies(out) == _accuracies(ref)
    assert _weights(out) == _weights(ref)


def test_ctrl_c_while_reports_are_written_keeps_the_previous_run(reference, tmp_path: Path) -> None:
    ref, _ = reference
    config = _config(tmp_path)
    out = tmp_path / "out"
    assert _run("run", str(config), "-o", str(out)).returncode == 0
    before = {p: _sha(p) for p in out.rglob("*") if p.is_file() and ".edge-opt" not in p.parts}
    proc = _start("run", str(config), "-o", str(out), "--overwrite")
    _wait_for_stage(proc, out, "reports")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    after = {p: _sha(p) for p in out.rglob("*") if p.is_file() and ".edge-opt" not in p.parts}
    status_file = out / "run_status.json"
    assert {p: h for p, h in after.items() if p != status_file} == {
        p: h for p, h in before.items() if p != status_file
    }
    assert _status(out)["status"] == "interrupted"
    report = _run("report", str(out))
    assert report.returncode == 0, report.stderr
    assert "rebuilt the previous complete run" in report.stderr


def test_a_second_run_into_the_same_directory_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    out = tmp_path / "out"
    first = _start("run", str(config), "-o", str(out))
    try:
        _wait_for_stage(first, out, "training")
        second = _run("run", str(config), "-o", str(out))
        assert second.returncode == 1
        assert f"is in use by another edge-opt process (pid {first.pid})" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)


def test_a_file_size_limit_fails_cleanly_and_keeps_the_finished_run(
    reference, tmp_path: Path
) -> None:
    config = _config(tmp_path)
    out = tmp_path / "out"
    assert _run("run", str(config), "-o", str(out)).returncode == 0
    manifest = _sha(out / "manifest.json")
    proc = _run("run", str(config), "-o", str(out), "--overwrite", limit_bytes=40_000)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1
    assert "File too large" in errors[0]
    assert _sha(out / "manifest.json") == manifest  # the finished run is untouched
    assert _status(out)["status"] == "failed"
    _check_every_file_parses(out)
