"""Speedup of the recommended candidate over the fp32 eager baseline, measured side by side.

Runs the config (default: configs/default.yaml, with any --set overrides) unless --run-dir
points at a finished run, then loads the baseline checkpoint, the recommended candidate's
deployable file (ONNX Runtime for .onnx, ExecuTorch for .pte, TorchScript for .pt) and every
measured executorch candidate's .pte (re-exported with `edge-opt export` when the run did not
keep it) into this one process and times them in interleaved rounds at the deployment batch
(latency_batch_size). Prints one line per executorch candidate and, last, the recommendation's
p50 latency ratio, accuracy drop and size ratio. Target: >= 5x lower latency, <= 1 pp accuracy
loss, >= 3.5x smaller.

    .venv/bin/python benchmarks/speedup.py [--config configs/default.yaml] [--run-dir DIR]
        [--set runtimes=[eager,onnxruntime,executorch]]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from _runs import run_or_reuse  # benchmarks/ is on sys.path when a script runs from it

from edge_opt.config.loading import build_config
from edge_opt.deploy.export import export_candidate
from edge_opt.measure.harness import HarnessSettings, measure_interleaved
from edge_opt.models.zoo import build_configured_model
from edge_opt.reports.result import RunResult
from edge_opt.runtimes.executorch import load_method
from edge_opt.runtimes.ort_sessions import ort_session

_LOADED: list[object] = []  # ExecuTorch programs stay alive while their methods are timed


def deployable_call(path: Path, x: torch.Tensor, threads: int):
    # Called as the sweep's harness calls them (edge_opt.runtimes): I/O binding for ONNX
    # Runtime, outputs not copied for ExecuTorch.
    if path.suffix == ".onnx":
        session = ort_session(path, threads)
        feed = np.ascontiguousarray(x.numpy())
        binding = session.io_binding()
        binding.bind_cpu_input(session.get_inputs()[0].name, feed)
        binding.bind_output(session.get_outputs()[0].name, "cpu")
        return lambda: session.run_with_iobinding(binding)
    if path.suffix == ".pte":
        program, method = load_method(path, threads)
        _LOADED.append(program)
        inputs = [x.float().contiguous()]
        return lambda: method.call(inputs, clone_outputs=False)
    module = torch.jit.load(str(path)).eval()
    return lambda: module(x)


def executorch_files(run_dir: Path, result: RunResult, scratch: Path) -> dict[str, Path]:
    """Each measured executorch candidate's .pte: the run's copy, or a fresh export."""
    exported = {m["candidate_id"]: m for m in result.exported_models if m.get("path")}
    files = {}
    for row in result.sweep:
        if row["runtime"] != "executorch" or row["status"] != "ok":
            continue
        cid = row["candidate_id"]
        if cid in exported:
            files[cid] = run_dir / exported[cid]["path"]
        else:
            files[cid] = Path(export_candidate(run_dir, cid, "pte", scratch / f"{cid}.pte").path)
    return files


def ratio_line(label: str, base: dict, row: dict, speedup: float) -> str:
    drop_val = base["accuracy"] - row["accuracy"]
    drop_test = base["test_accuracy"] - row["test_accuracy"]
    size_ratio = base["model_size_bytes"] / row["model_size_bytes"]
    met = speedup >= 5 and drop_val <= 0.01 and size_ratio >= 3.5
    return (
        f"{label}p50_speedup={speedup:.2f}x accuracy_drop_val={drop_val * 100:+.2f}pp "
        f"accuracy_drop_test={drop_test * 100:+.2f}pp size_ratio={size_ratio:.2f}x "
        f"target_met={met}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--run-dir", type=Path)
    parser.add_argument("--set", action="append", default=[], help="config override of the run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = run_or_reuse(args.config, args.run_dir, Path(tmp), args.set)
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
        b_key, r_key = "baseline fp32 eager", f"{rec_id} ({rec_path.name})"
        calls = {b_key: lambda: baseline(x), r_key: deployable_call(rec_path, x, threads)}
        pte = executorch_files(run_dir, result, Path(tmp))
        for cid, path in pte.items():
            if cid != rec_id:
                calls[f"{cid} ({path.name})"] = deployable_call(path, x, threads)
        stats = measure_interleaved(calls, settings)
    b = stats[b_key]
    for key, s in stats.items():
        print(
            f"{key}: p50 {s.p50_ms:.4f} ms [95% CI {s.p50_ci95_low_ms:.4f}, "
            f"{s.p50_ci95_high_ms:.4f}], p95 {s.p95_ms:.4f} ms, n={s.n}, noisy={s.noisy}"
        )
    print(f"size: baseline {base['model_size_bytes']} B, {rec_id} {rec['model_size_bytes']} B")
    if not pte:
        print("executorch: no executorch candidates in this run (--set runtimes=[...])")
    for key, s in stats.items():
        cid = key.split(" ")[0]
        if cid in pte and cid != rec_id:
            print(ratio_line(f"executorch {cid}: ", base, rows[cid], b.p50_ms / s.p50_ms))
    speedup = b.p50_ms / stats[r_key].p50_ms
    label = f"batch={cfg.latency_batch_size} threads={threads} recommended={rec_id} "
    print(ratio_line(label, base, rec, speedup))


if __name__ == "__main__":
    main()
