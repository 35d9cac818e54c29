"""What `edge-opt run` prints: plain lines when piped, --quiet, fitted tables, run.log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EDGE_OPT = Path(sys.executable).parent / "edge-opt"
TINY = """\
dataset: synthetic
train_subset: 400
val_subset: 100
test_subset: 100
batch_size: 50
epochs: 1
pruning_levels: [0.0]
precisions: [fp32, int8]
runtimes: [eager, onnxruntime]
calibration_batches: 1
benchmark_warmup: 2
benchmark_repeats: 5
benchmark_trials: 1
benchmark_max_rounds: 2
benchmark_instances: 1
throughput_repeats: 1
measure_peak_rss: false
profile_repeats: 2
"""
CANDIDATES = ["p00-fp32-eager", "p00-fp32-onnxruntime", "p00-int8-eager", "p00-int8-onnxruntime"]
# What libraries print during a run; each must land in run.log, never on the console.
LIBRARY_NOISE = ("USDT", "profiler_start", "pre-processing before quantization")


def edge_opt(*args: str, columns: str = "80") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": columns}
    return subprocess.run(
        [str(EDGE_OPT), *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def piped_run(
    tiny_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("piped") / "run"
    return edge_opt("run", str(tiny_config), "-o", str(out)), out


@pytest.mark.slow
def test_piped_run_prints_plain_lines_one_per_candidate_and_phase(piped_run) -> None:
    proc, _ = piped_run
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr
    assert "\x1b[" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] ", line) for line in lines), lines
    for cid in CANDIDATES:
        assert sum(f"prepared {cid}:" in line for line in lines) == 1, cid
        assert sum(re.search(rf"\] \[\d/4\] {cid} ", line) is not None for line in lines) == 1
    assert any("latency timing: " in line for line in lines)


@pytest.mark.slow
def test_library_output_is_in_run_log_and_not_on_stderr(piped_run) -> None:
    proc, out = piped_run
    log = (out / "run.log").read_text()
    for noise in LIBRARY_NOISE:
        assert noise in log, noise
        assert noise not in proc.stderr, noise
        assert noise not in proc.stdout, noise
    # edge-opt's own records too
    assert "edge_opt.orchestrate.prepare: prepared p00-int8-onnxruntime" in log
    assert (out / ".edge-opt" / "run.log").is_file()  # the live log stays for a failed run


@pytest.mark.slow
def test_table_fits_80_columns_and_names_the_full_table(piped_run) -> None:
    proc, out = piped_run
    table = [line for line in proc.stdout.splitlines() if line.startswith(("┃", "│", "┏"))]
    assert table, proc.stdout
    assert max(len(line) for line in table) <= 80
    assert "…" not in proc.stdout
    header = next(line for line in table if "candidate" in line)
    assert [c.strip() for c in header.strip("┃").split("┃")] == [
        "candidate",
        "verdict",
        "accuracy",
        "p50 ms",
        "size KiB",
        "p50 +-",
    ]
    assert f"full table: {out}/sweep_results.csv" in proc.stdout
    assert "not shown at width 80: speedup, p95 ms" in proc.stdout


@pytest.mark.slow
def test_quiet_prints_only_the_result(tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "quiet"
    fast = ["--set", "precisions=[fp32]", "--set", "runtimes=[eager]"]
    budget = ["--set", "active_memory_budget_mb=1.0"]
    proc = edge_opt("run", str(tiny_config), "-o", str(out), "--quiet", *fast, *budget)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    # Who measured, for which target (here the same machine), then the answer.
    assert lines[0].startswith("Measured on: ")
    assert lines[0].endswith(", which is the target (host).")
    assert lines[1].startswith("recommended: p00-fp32-eager - lowest latency_p50_ms")
    assert lines[-1] == f"reports written to {out}/"
    assert len(lines) <= 4  # + "N warning(s): see .../report.md" when there are any
    assert (out / "run.log").is_file()


def test_quiet_still_prints_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 1\n")
    proc = edge_opt("run", str(bad), "-o", str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "epoch: unknown key; did you mean 'epochs'?" in proc.stderr


def test_a_failed_run_in_process_leaves_the_console_on_the_current_stderr(tmp_path: Path) -> None:
    """The run display swaps the console's file and must give it back to ``sys.stderr``: the
    next in-process invocation (a new CliRunner stream) still gets its error line."""
    from typer.testing import CliRunner

    from edge_opt.cli.options import app

    out = tmp_path / "out"
    args = ["run", str(REPO / "configs/quick.yaml"), "--set", "dataset=fashion-mnist"]
    first = CliRunner().invoke(app, [*args, "--set", f"data_dir={tmp_path}", "-o", str(out)])
    assert first.exit_code == 1
    assert f"data_dir: {tmp_path} lacks the fashion-mnist IDX files" in first.stderr
    log = (out / ".edge-opt" / "run.log").read_text()
    assert "ERROR   edge_opt.run: run stopped: DataError: data_dir:" in log
    second = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert second.exit_code == 1
    assert "nowhere: no such directory" in second.stderr
