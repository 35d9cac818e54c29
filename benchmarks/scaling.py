"""Parallel preparation: the same preparation-heavy sweep with the local executor and with
Ray on this machine, side by side; prints the preparation stages' speed-up as a ratio.

Preparation = pruning + fine-tuning every level (``pruning``) and converting, exporting and
evaluating every candidate (``sweep_tasks``: the Ray tasks; ``sweep_preparing``: the local
pass, which rebuilds each candidate from the cache the tasks filled), from each run's
``summary.json``. The Ray run
starts an embedded Ray (``executor: {kind: ray, address: local}``, loopback only) with one
CPU per prepare task; its start-up is printed apart. Both runs must give the same accuracies
(checked). Runs alternate (local, ray, local, ray ...) so drift hits both. Quiet machine only.

Last, the ceiling this host allows: one fine-tuning kernel (SmallCNN, batch 64) run as one
process on every core (what the local executor does) and as one single-thread process per core
at once (what Ray tasks do), with no Ray at all; the ratio of their throughputs bounds any
executor's preparation speed-up over the local one on this machine.

    .venv/bin/python benchmarks/scaling.py [--config configs/scaling.yaml] [--pairs 1]
"""

from __future__ import annotations

import argparse
import json
import os
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


KERNEL = """
import sys, time, torch
from edge_opt.measure.harness import stabilize_allocator
from edge_opt.models.zoo import SmallCNN
stabilize_allocator()  # as the driver and every Ray task do
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
x, y = torch.randn(8000, 1, 28, 28), torch.randint(0, 10, (8000,))
model = SmallCNN().to(memory_format=torch.channels_last)
opt, loss = torch.optim.Adam(model.parameters(), 1e-3), torch.nn.CrossEntropyLoss()
start = time.perf_counter()
for xb, yb in zip(x.split(64), y.split(64)):
    opt.zero_grad()
    loss(model(xb.contiguous(memory_format=torch.channels_last)), yb).backward()
    opt.step()
print(time.perf_counter() - start)
"""


def kernel_ceiling(reps: int = 3) -> float:
    """Throughput of one single-thread kernel per core at once over one kernel on all cores
    (each process times its own training loop, so start-up and imports are left out)."""
    cores = len(os.sched_getaffinity(0))
    ratios = []
    for _ in range(reps):
        threaded = subprocess.run(
            [sys.executable, "-c", KERNEL, str(cores)], check=True, capture_output=True, text=True
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", KERNEL, "1"], stdout=subprocess.PIPE, text=True)
            for _ in range(cores)
        ]
        side_by_side = max(float(proc.communicate()[0]) for proc in procs)
        ratios.append(float(threaded.stdout) * cores / side_by_side)
    return statistics.median(ratios)


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
    ceiling = kernel_ceiling()
    print(
        f"ceiling on this host: one single-thread fine-tuning process per core does "
        f"{ceiling:.2f}x the work of one process on every core (no Ray; bounds the speed-up)"
    )


if __name__ == "__main__":
    main()
