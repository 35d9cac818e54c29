"""Parallel preparation: the same preparation-heavy sweep with the local executor and with
Ray on this machine, side by side; prints the preparation stages' speed-up as a ratio.

Preparation = pruning + fine-tuning every level (``pruning``) and converting, exporting and
evaluating every candidate (``sweep_tasks``: the Ray tasks; ``sweep_preparing``: the local
pass, which rebuilds each candidate from the cache the tasks filled), from each run's
``summary.json``. The Ray run
starts an embedded Ray (``executor: {kind: ray, address: local}``, loopback only) with one
CPU per prepare task; its start-up is printed apart. Both runs must give the same accuracies
(checked). Runs alternate (local, ray, local, ray ...) so drift hits both. Quiet machine only.

    .venv/bin/python benchmarks/scaling.py [--config configs/scaling.yaml] [--pairs 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _runs import REPO  # benchmarks/ is on sys.path when a script runs from it

EDGE_OPT = Path(sys.executable).parent / "edge-opt"
PREP = ("pruning", "sweep_tasks", "sweep_preparing")
RAY = "executor={kind: ray, address: local, cpus_per_task: 1}"


def one_run(config: str, out: Path, *extra: str) -> tuple[float, dict[str, float], pd.DataFrame]:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(EDGE_OPT), "run", config, "-o", str(out), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"edge-opt run failed:\n{proc.stderr[-3000:]}")
    timings = json.loads((out / "summary.json").read_text())["timings_s"]
    return wall, timings, pd.read_csv(out / "sweep_results.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/scaling.yaml")
    parser.add_argument("--pairs", type=int, default=1)
    args = parser.parse_args()
    prep: dict[str, list[float]] = {"local": [], "ray": []}
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    with tempfile.TemporaryDirectory(prefix="edge-opt-scaling-") as tmp:
        for pair in range(args.pairs):
            rows = {}
            for name, extra in (("local", ()), ("ray", ("--set", RAY))):
                wall, timings, rows[name] = one_run(
                    args.config, Path(tmp) / f"{name}{pair}", *extra
                )
                prep[name].append(sum(timings.get(k, 0.0) for k in PREP))
                walls[name].append(wall)
                parts = ", ".join(f"{k} {timings.get(k, 0.0):.1f} s" for k in PREP)
                print(
                    f"{name:>5} run {pair + 1}: preparation {prep[name][-1]:.1f} s ({parts}); "
                    f"wall {wall:.1f} s",
                    flush=True,
                )
            both = rows["local"].merge(rows["ray"], on="candidate_id", suffixes=("_l", "_r"))
            diff = (both["accuracy_l"] - both["accuracy_r"]).abs()
            print(
                f"  same candidates: {len(both) == len(rows['local']) == len(rows['ray'])}; "
                f"identical validation accuracy on {int((diff == 0).sum())} of {len(both)} "
                f"(largest difference {diff.max():.4f}: local training used all cores, a task "
                "one; float rounding can move an int8 prediction)"
            )
    local, ray = statistics.median(prep["local"]), statistics.median(prep["ray"])
    print(
        f"\npreparation: local {local:.1f} s, ray {ray:.1f} s -> speed-up {local / ray:.2f}x "
        f"(target >= 1.6x on 2 CPUs)"
    )
    print(
        f"whole run: local {statistics.median(walls['local']):.1f} s, "
        f"ray {statistics.median(walls['ray']):.1f} s (includes Ray's start-up and timing)"
    )


if __name__ == "__main__":
    main()
