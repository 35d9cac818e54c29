"""A run directory is data, never instructions and never a way out (issue 20, items 1 and 6).

Each test edits a copy of a real finished run as a hostile user would, then runs the real CLI:
the command must refuse in one line with exit 1, and nothing may be written outside the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_opt.errors import RunDirError
from edge_opt.infra.publish import apply_journal
from edge_opt.infra.runstatus import published_files
from edge_opt.infra.verified import contained, verified_bytes

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge_opt.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def run_copy(small_run: Path, tmp_path: Path) -> Path:
    """A private copy of the session's small run, one level below ``tmp_path`` (so that a
    file written "outside" it would land in ``tmp_path``)."""
    copy = tmp_path / "box" / "run"
    shutil.copytree(small_run, copy, symlinks=True)
    return copy


def edit_result(run: Path, edit, reseal: bool = True) -> None:
    """Edit run_result.json; with ``reseal``, also the manifest's sha256 of it (a forger who
    knows the format), so the checks after the sha256 are what is tested."""
    path = run / "run_result.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    if reseal:
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["files"]["run_result.json"] = hashlib.sha256(path.read_bytes()).hexdigest()
        (run / "manifest.json").write_text(json.dumps(manifest))


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_an_edited_run_result_is_refused_by_its_sha256(run_copy: Path) -> None:
    edit_result(run_copy, lambda d: d["recommendation"].update(accuracy=1.0), reseal=False)
    for command in (["report"], ["export"]):
        line = one_error_line(cli(*command, str(run_copy), cwd=run_copy.parent))
        assert "run_result.json: sha256 differs from the manifest's" in line


@pytest.mark.parametrize("bad_id", ["../../../x", "/tmp/abs-x", "p00-fp32-eager/../../y"])
def test_a_traversal_id_is_refused_and_nothing_is_written_outside(
    run_copy: Path, bad_id: str
) -> None:
    def plant(data):
        data["hardware_candidates"][0]["candidate_id"] = bad_id
        data["sweep"][0]["candidate_id"] = bad_id

    edit_result(run_copy, plant)
    before = files_under(run_copy.parent.parent)
    for command in (["report"], ["export", "-c", bad_id]):
        line = one_error_line(cli(*command, str(run_copy), cwd=run_copy.parent))
        assert "not a candidate id" in line
        assert "run_result.json" in line
    assert files_under(run_copy.parent.parent) == before
    assert not Path("/tmp/abs-x.pt").exists()


def test_export_never_runs_a_factory_the_user_did_not_name(run_copy: Path, tmp_path) -> None:
    marker = tmp_path / "pwned"

    def plant(data):
        data["config"]["model"] = {
            "factory": "os:system",
            "kwargs": {"command": f"touch {marker}"},
            "input_shape": [1, 28, 28],
        }

    edit_result(run_copy, plant)
    line = one_error_line(cli("export", str(run_copy), cwd=run_copy.parent))
    assert "model.factory is 'os:system'" in line
    assert "--allow-factory os:system" in line
    assert not marker.exists()


def test_a_planted_symlink_cannot_lead_a_read_out_of_the_run(run_copy: Path, tmp_path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    variants = run_copy / "models" / "variants"
    shutil.move(variants, outside / "variants")
    variants.symlink_to(outside / "variants")
    with pytest.raises(RunDirError, match="outside"):
        verified_bytes(run_copy, "models/variants/p00.pt")
    with pytest.raises(RunDirError, match="leave the run directory"):
        contained(run_copy, "../box")


def test_a_planted_publish_record_never_deletes_outside_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    (out / ".edge-opt").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    record = {"files": ["../victim.txt", str(victim), "report.md"]}
    (out / ".edge-opt" / "published.json").write_text(json.dumps(record))
    assert published_files(out) == ["report.md"]
    staging = tmp_path / "staging"
    staging.mkdir()
    apply_journal(out, staging, {"new": ["../escaped.txt"], "old": ["../victim.txt"]})
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "escaped.txt").exists()


def test_pruning_levels_that_share_an_id_are_refused(tmp_path: Path) -> None:
    proc = cli("validate", "configs/quick.yaml", "--set", "pruning_levels=[0.5,0.504]", cwd=REPO)
    assert proc.returncode == 1
    assert "pruning_levels.1: 0.504 and 0.5 both round to p50" in proc.stderr


SWALLOWED = """
import os, signal, sys
from edge_opt.infra.stop import check_stop, stop_on_signals

class Finalized:
    def __del__(self):  # a Ctrl-C that lands in a finalizer: Python prints it and goes on
        os.kill(os.getpid(), signal.SIGINT)

with stop_on_signals():
    Finalized()  # collected at once: the KeyboardInterrupt is "ignored"
    print("carried on", flush=True)
    try:
        check_stop()
    except KeyboardInterrupt:
        print("stopped", flush=True)
        sys.exit(3)
"""


def test_a_stop_swallowed_by_a_finalizer_is_raised_again() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SWALLOWED], capture_output=True, text=True, timeout=120
    )
    assert "Exception ignored" in proc.stderr  # the interpreter did swallow it
    assert proc.stdout.splitlines() == ["carried on", "stopped"]
    assert proc.returncode == 3


def test_sigterm_during_the_reports_stage_stops_the_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    fast = [
        "epochs=1",
        "fine_tune_epochs=0",
        "pruning_levels=[0.0]",
        "benchmark_repeats=10",
        "benchmark_trials=1",
        "benchmark_max_rounds=1",
        "benchmark_instances=1",
        "throughput_repeats=2",
        "measure_peak_rss=false",
    ]
    args = [sys.executable, "-m", "edge_opt.cli", "run", "configs/quick.yaml", "-o", str(out)]
    for item in fast:
        args += ["--set", item]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    status = out / "run_status.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(status.read_text()).get("stage") == "reports":
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before its reports stage was seen"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr.decode()[-2000:]
    assert json.loads(status.read_text())["status"] == "interrupted"
    assert not (out / "run_result.json").exists()


FACTORIES = """
import os

def exits(**kwargs):
    os._exit(7)

def interrupts(**kwargs):
    raise KeyboardInterrupt
"""


@pytest.mark.parametrize("section", ["model", "dataset"])
@pytest.mark.parametrize(
    ("factory", "said"),
    [
        ("exits", "it called os._exit(7)"),
        ("interrupts", "it raised KeyboardInterrupt itself (no Ctrl-C or SIGTERM was sent)"),
    ],
)
def test_a_factory_cannot_end_or_interrupt_edge_opt(
    tmp_path: Path, section: str, factory: str, said: str
) -> None:
    (tmp_path / "fac.py").write_text(FACTORIES)
    reference = f"{tmp_path / 'fac.py'}:{factory}"
    other = "model: {name: SmallCNN}" if section == "dataset" else "dataset: mnist"
    config = tmp_path / "c.yaml"
    config.write_text(f"{section}: {{factory: '{reference}'}}\n{other}\nval_subset: 500\n")
    proc = cli("validate", str(config), cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert f"{section}.factory '{reference}'" in proc.stderr
    assert said in proc.stderr
