"""Where a run's wall time goes, against edge-opt v1, and what `--resume` saves.

Runs the config (default: configs/default.yaml) fresh and prints its stage timings (from
summary.json) and its wall time. With --against REV (e.g. the repository's first commit,
edge-opt v1), first runs that revision's own configs/default.yaml from a temporary git
worktree, back to back on the same machine, and prints the ratio of the two wall times.
With --kill-at F (0 < F < 1), runs it a second time, kills it
with SIGKILL at F x the fresh wall time, resumes it with `--resume`, and prints the resume's
wall time as a fraction of the fresh run's, and whether the accuracies and the trained weights'
sha256 are identical. Run it on a quiet machine: it times whole runs.

    .venv/bin/python benchmarks/wall_time.py [--config configs/default.yaml] [--kill-at 0.6]
        [--against $(git rev-list --max-parents=0 HEAD)]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _runs import REPO  # benchmarks/ is on sys.path when a script runs from it

EDGE_OPT = Path(sys.executable).parent / "edge-opt"


def timed_run(*args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run([str(EDGE_OPT), "run", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"edge-opt run failed:\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def v1_run(rev: str, tmp: Path) -> float:
    """Wall time of revision ``rev`` running its own configs/default.yaml (its code, this venv)."""
    tree = tmp / "v1-tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(tree), rev], cwd=REPO, check=True
    )
    try:
        env = {**os.environ, "PYTHONPATH": str(tree / "src")}
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "edge_opt.cli",
                "run",
                "configs/default.yaml",
                "-o",
                str(tmp / "v1-out"),
            ],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"the run of {rev} failed:\n{proc.stderr[-2000:]}")
        return wall
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)


def stage(out: Path) -> str:
    try:
        return json.loads((out / "run_status.json").read_text()).get("stage", "?")
    except (OSError, ValueError):
        return "?"


def trained_weights(out: Path) -> dict[str, str]:
    files = json.loads((out / "manifest.json").read_text())["files"]
    return {k: v for k, v in files.items() if k == "models/baseline_fp32.pt" or "variants/" in k}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--kill-at", type=float, default=None)
    parser.add_argument("--against", metavar="REV", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-opt-wall-") as tmp:
        v1_wall = v1_run(args.against, Path(tmp)) if args.against else None
        fresh = Path(tmp) / "fresh"
        wall = timed_run(args.config, "-o", str(fresh))
        summary = json.loads((fresh / "summary.json").read_text())
        if v1_wall is not None:
            print(f"{args.against} (its own default config): {v1_wall:.1f} s wall")
        print(f"fresh run of {args.config}: {wall:.1f} s wall")
        for name, seconds in summary.get("timings_s", {}).items():
            print(f"  {name:<16} {seconds:7.1f} s")
        if v1_wall is not None:
            print(f"ratio: {wall / v1_wall:.2f} x {args.against}'s wall time")
        if args.kill_at is None:
            return
        killed = Path(tmp) / "killed"
        proc = subprocess.Popen(
            [str(EDGE_OPT), "run", args.config, "-o", str(killed)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(args.kill_at * wall)
        at = stage(killed)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed = timed_run(args.config, "-o", str(killed), "--resume")
        a = pd.read_csv(fresh / "sweep_results.csv").set_index("candidate_id")
        b = pd.read_csv(killed / "sweep_results.csv").set_index("candidate_id")
        same_acc = bool((a["accuracy"].fillna(-1) == b["accuracy"].fillna(-1)).all())
        same_test = bool((a["test_accuracy"].fillna(-1) == b["test_accuracy"].fillna(-1)).all())
        reused = int(b["prepared_from_cache"].sum()) if "prepared_from_cache" in b else 0
        print(f"SIGKILL at {args.kill_at:.0%} of the fresh wall time (stage: {at})")
        print(f"resume: {resumed:.1f} s wall = {resumed / wall:.2f} x the fresh run")
        print(f"candidates prepared from the cache: {reused} of {len(b)}")
        print(
            f"identical validation accuracies: {same_acc}; identical test accuracies: {same_test}"
        )
        same_weights = trained_weights(fresh) == trained_weights(killed)
        print(f"identical trained weights (sha256): {same_weights}")


if __name__ == "__main__":
    main()
