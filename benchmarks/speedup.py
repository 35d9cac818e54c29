"""Speedup of the recommended candidate over the fp32 eager baseline, measured side by side.

Runs the config (default: configs/default.yaml) unless --run-dir points at a finished run, then
loads the baseline checkpoint and the recommended candidate's deployable file (ONNX Runtime for
.onnx, TorchScript for .pt) into this one process and times both in interleaved rounds at the
deployment batch (latency_batch_size). Prints, last, the p50 latency ratio, the accuracy drop
and the size ratio. Target: >= 5x lower latency, <= 1 pp accuracy loss, >= 3.5x smaller.

    .venv/bin/python benchmarks/speedup.py [--config configs/default.yaml] [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from _runs import run_or_reuse  # benchmarks/ is on sys.path when a script runs from it

from edge_opt.config import build_config
from edge_opt.harness import HarnessSettings, measure_interleaved
from edge_opt.pipeline import build_configured_model
from edge_opt.results import RunResult
from edge_opt.runtimes import ort_session


def deployable_call(path: Path, x: torch.Tensor, threads: int):
    if path.suffix == ".onnx":
        session = ort_session(path, threads)
        feed = {session.get_inputs()[0].name: x.numpy()}
        return lambda: session.run(None, feed)
    module = torch.jit.load(str(path)).eval()
    return lambda: module(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--run-dir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = run_or_reuse(args.config, args.run_dir, Path(tmp))
        result = RunResult.load(run_dir)
        rec_id = result.recommendation["candidate_id"]
        if rec_id is None:
            sys.exit(f"no recommended candidate: {result.recommendation['reason']}")
        rows = {r["candidate_id"]: r for r in result.sweep}
        base, rec = rows["p00-fp32-eager"], rows[rec_id]
        exported = {m["candidate_id"]: m for m in result.exported_models}
        rec_path = run_dir / exported[rec_id]["path"]

        cfg = build_config(result.config)
        built = build_configured_model(cfg)
        baseline = built.model.eval()
        state = torch.load(run_dir / result.baseline["checkpoint"], weights_only=True)
        baseline.load_state_dict(state)
        threads = cfg.benchmark_threads
        x = torch.randn(cfg.latency_batch_size, *built.input_shape)
        settings = HarnessSettings(
            threads=threads, warmup_min=20, calls_per_round=200, min_rounds=10, max_rounds=30
        )
        calls = {
            "baseline fp32 eager": lambda: baseline(x),
            f"{rec_id} ({rec_path.name})": deployable_call(rec_path, x, threads),
        }
        stats = measure_interleaved(calls, settings)
    (b_key, b), (r_key, r) = stats.items()
    speedup = b.p50_ms / r.p50_ms
    drop_val = base["accuracy"] - rec["accuracy"]
    drop_test = base["test_accuracy"] - rec["test_accuracy"]
    size_ratio = base["model_size_bytes"] / rec["model_size_bytes"]
    for key, s in stats.items():
        print(
            f"{key}: p50 {s.p50_ms:.4f} ms [95% CI {s.p50_ci95_low_ms:.4f}, "
            f"{s.p50_ci95_high_ms:.4f}], p95 {s.p95_ms:.4f} ms, n={s.n}, noisy={s.noisy}"
        )
    print(f"size: baseline {base['model_size_bytes']} B, {rec_id} {rec['model_size_bytes']} B")
    met = speedup >= 5 and drop_val <= 0.01 and size_ratio >= 3.5
    print(
        f"batch={cfg.latency_batch_size} threads={threads} "
        f"p50_speedup={speedup:.2f}x accuracy_drop_val={drop_val * 100:+.2f}pp "
        f"accuracy_drop_test={drop_test * 100:+.2f}pp size_ratio={size_ratio:.2f}x "
        f"target_met={met}"
    )


if __name__ == "__main__":
    main()
