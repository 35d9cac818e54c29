"""Recovery after pruning: plain fine-tuning vs distillation vs iterative pruning, side by side.

Runs the default config (configs/default.yaml) with ONNX Runtime added to its runtimes (so
`p50-fp32-onnxruntime`, the default's pick before recovery existed, is timed in the same rounds
as every candidate) once per recovery method, one after the other on the same machine, every
method with the same fine-tuning epochs per level:
- plain: cross-entropy, one-shot pruning (edge-opt before recovery existed);
- distilled: KL from the trained baseline + cross-entropy (recovery.distillation);
- steps: cross-entropy, each level pruned in 2 steps with the budget split between them;
- distilled+steps: both.
For each it prints the fp32 eager candidate's validation and test accuracy per level, the
accepted frontier's hypervolume (latency vs accuracy drop, as benchmarks/search.py defines it:
normalised by the run's own p00-fp32-eager, reference point (1.0, 0.05)), the recommendation
with its p50 and its speed-up over `p50-fp32-onnxruntime` timed in the same run (the pick of
edge-opt's default before this benchmark), the fastest timed candidate whatever its accuracy
(the ceiling any recovery could reach with these levels), and the run's wall time and
fine-tuning time. The
baseline is trained once per run from the same seed, so every method starts from the same
weights (it is reused from the cache after the first run; its sha256 is printed).

    .venv/bin/python benchmarks/recovery.py [--config configs/default.yaml] [--only plain,...]
        [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _runs import REPO, normalised_front  # benchmarks/ is on sys.path when a script runs from it

from edge_opt.search.frontier import hypervolume_2d

REFERENCE = "p00-fp32-eager"
YARDSTICK = "p50-fp32-onnxruntime"  # the default's pick before recovery and the new default
REFERENCE_POINT = (1.0, 0.05)
METHODS = {
    "plain": ["recovery.distillation=false", "recovery.steps=1"],
    "distilled": ["recovery.distillation=true", "recovery.steps=1"],
    "steps": ["recovery.distillation=false", "recovery.steps=2"],
    "distilled+steps": ["recovery.distillation=true", "recovery.steps=2"],
}


def run(config: str, sets: list[str], out: Path) -> tuple[dict, float]:
    edge_opt = Path(sys.executable).parent / "edge-opt"
    args = [a for item in sets for a in ("--set", item)]
    start = time.perf_counter()
    proc = subprocess.run(
        [str(edge_opt), "run", config, "-o", str(out), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"edge-opt run {' '.join(sets)} failed:\n{proc.stderr[-3000:]}")
    return json.loads((out / "run_result.json").read_text()), wall


def describe(name: str, result: dict, wall: float) -> dict:
    sweep = pd.DataFrame(result["sweep"])
    ok = sweep[sweep["status"] == "ok"].set_index("candidate_id")
    fp32 = sweep[(sweep["precision"] == "fp32") & (sweep["runtime"] == "eager")]
    levels = {
        f"p{round(r.pruning_level * 100):02d}": (r.accuracy, r.test_accuracy)
        for r in fp32.itertuples()
    }
    front = normalised_front(sweep, REFERENCE)
    rec = result["recommendation"].get("candidate_id")
    p50 = ok.loc[rec, "latency_p50_ms"] if rec in ok.index else float("nan")
    yard = ok.loc[YARDSTICK, "latency_p50_ms"] if YARDSTICK in ok.index else float("nan")
    ref = ok.loc[REFERENCE]
    fastest = ok["latency_p50_ms"].idxmin()
    return {
        "fastest": fastest,
        "fastest_speedup": yard / ok.loc[fastest, "latency_p50_ms"],
        "fastest_drop": ref["accuracy"] - ok.loc[fastest, "accuracy"],
        "tolerance": result["config"]["max_accuracy_drop"],
        "method": name,
        "levels": levels,
        "hypervolume": hypervolume_2d([(x, y) for _, x, y in front], REFERENCE_POINT),
        "front": front,
        "recommended": rec,
        "rec_val": ok.loc[rec, "accuracy"] if rec in ok.index else float("nan"),
        "rec_test": ok.loc[rec, "test_accuracy"] if rec in ok.index else float("nan"),
        "ref_val": ref["accuracy"],
        "ref_test": ref["test_accuracy"],
        "p50": p50,
        "speedup": yard / p50,
        "wall": wall,
        "fine_tune_s": result["timings_s"].get("pruning", float("nan")),
        "baseline_sha": result["baseline"]["checkpoint_sha256"][:12],
    }


def show(rows: list[dict]) -> None:
    names = [r["method"] for r in rows]
    levels = list(rows[0]["levels"])
    print("fp32 eager accuracy per level, validation / test:")
    print(f"  {'level':6s}" + "".join(f"{n:>22s}" for n in names))
    for level in levels:
        cells = "".join(
            f"{r['levels'][level][0]:>13.4f} / {r['levels'][level][1]:.4f}" for r in rows
        )
        print(f"  {level:6s}{cells}")
    plain = rows[0]
    print()
    for r in rows:
        ratio = r["hypervolume"] / plain["hypervolume"] if plain["hypervolume"] else float("nan")
        print(
            f"{r['method']}: hypervolume {r['hypervolume']:.5f} ({ratio:.2f}x {plain['method']}); "
            f"recommended {r['recommended']} p50 {r['p50']:.4f} ms, {r['speedup']:.2f}x "
            f"{YARDSTICK} in the same run; validation {r['rec_val']:.4f} (reference "
            f"{r['ref_val']:.4f}, drop {r['ref_val'] - r['rec_val']:+.4f}), test "
            f"{r['rec_test']:.4f} (reference {r['ref_test']:.4f}, drop "
            f"{r['ref_test'] - r['rec_test']:+.4f}); wall {r['wall']:.1f} s, fine-tuning "
            f"{r['fine_tune_s']:.1f} s; baseline {r['baseline_sha']}"
        )
        for cid, x, y in r["front"]:
            print(f"    {cid:28s} latency x{x:.3f}  accuracy drop {y:+.4f}")
        print(
            f"    ceiling: the fastest timed candidate, {r['fastest']}, is "
            f"{r['fastest_speedup']:.2f}x {YARDSTICK} (accuracy drop {r['fastest_drop']:+.4f}, "
            f"tolerance {r['tolerance']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--only", default=",".join(METHODS), help="methods, comma-separated")
    parser.add_argument(
        "--set",
        action="append",
        default=["runtimes=[eager, onnxruntime, executorch]"],
        metavar="KEY=VALUE",
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-opt-recovery-") as tmp:
        for name in args.only.split(","):
            result, wall = run(args.config, [*METHODS[name], *args.set], Path(tmp) / name)
            rows.append(describe(name, result, wall))
            print(f"[{name}: {wall:.1f} s]", file=sys.stderr, flush=True)
    show(rows)


if __name__ == "__main__":
    main()
