"""Repeatability: run the quick config twice back to back and compare the two p50 rankings.

Prints, last, the Kendall tau-b of the candidates' p50 latency ranking between the runs and the
largest per-candidate p50 ratio (run 2 / run 1). Target: tau >= 0.9, every ratio within +-10%.

    .venv/bin/python benchmarks/repeatability.py [--config configs/quick.yaml] [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def kendall_tau_b(x: list[float], y: list[float]) -> float:
    """Kendall's tau-b (ties handled), O(n^2): fine for a sweep's handful of candidates."""
    concordant = discordant = ties_x = ties_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denom if denom else float("nan")


def run_once(config: str, out: Path) -> pd.DataFrame:
    edge_opt = Path(sys.executable).parent / "edge-opt"
    proc = subprocess.run(
        [str(edge_opt), "run", config, "--output-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"edge-opt run failed:\n{proc.stderr}")
    df = pd.read_csv(out / "sweep_results.csv")
    return df[df["status"] == "ok"].set_index("candidate_id")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quick.yaml")
    parser.add_argument("--keep", type=Path, help="keep both runs' outputs here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        first = run_once(args.config, root / "run1")
        second = run_once(args.config, root / "run2")
    common = first.index.intersection(second.index)
    table = pd.DataFrame(
        {
            "p50_run1_ms": first.loc[common, "latency_p50_ms"],
            "p50_run2_ms": second.loc[common, "latency_p50_ms"],
            "iqr_over_median_run1": first.loc[common, "latency_iqr_ms"]
            / first.loc[common, "latency_p50_ms"],
            "noisy_run1": first.loc[common, "noisy"],
            "noisy_run2": second.loc[common, "noisy"],
        }
    )
    table["ratio_run2_over_run1"] = table["p50_run2_ms"] / table["p50_run1_ms"]
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    # Diagnostic only: how fast this core was in each run (reference kernel, best in the run).
    ref1 = first["host_reference_ms"].min()
    ref2 = second["host_reference_ms"].min()
    print(
        f"host reference kernel: run1 {ref1:.4f} ms, run2 {ref2:.4f} ms "
        f"(ratio {ref2 / ref1:.3f}); noisy candidates: run1 {int(first['noisy'].sum())}, "
        f"run2 {int(second['noisy'].sum())} of {len(table)}"
    )
    tau = kendall_tau_b(table["p50_run1_ms"].tolist(), table["p50_run2_ms"].tolist())
    worst = table["ratio_run2_over_run1"].iloc[(table["ratio_run2_over_run1"] - 1).abs().argmax()]
    ok = tau >= 0.9 and (table["ratio_run2_over_run1"] - 1).abs().max() <= 0.10
    print(
        f"candidates={len(table)} kendall_tau_p50={tau:.3f} "
        f"largest_p50_ratio={worst:.3f} target_met={ok}"
    )


if __name__ == "__main__":
    main()
