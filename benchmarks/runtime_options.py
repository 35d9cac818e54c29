"""Runtime options for tiny models at batch 1, timed side by side against today's defaults.

For SmallCNN unpruned and 50% pruned, builds every option below and times all of them (and
fp32 eager) in the same interleaved rounds, several independently built instances each
(fresh session or program load). Prints per option its p50 and the paired ratio
default / option (> 1: the option is faster than the default it would replace), with the
inter-quartile range of the per-round ratios.

- onnxruntime fp32: graph optimisation level (all = default, extended, basic, disable),
  allow_spinning off, memory pattern off, parallel execution mode, and session.run with a feed
  dict instead of I/O binding (every other ONNX Runtime option is called through I/O binding).
- onnxruntime int8: QDQ per-channel (default) vs QDQ per-tensor, QOperator per-channel and
  per-tensor.
- executorch fp32 / int8: default (XnnpackPartitioner, int8 per-channel, outputs not copied)
  vs per_op_mode (one XNNPACK subgraph per operator), int8 per-tensor, and copying the outputs
  (``clone_outputs=True``, executorch.runtime's ``Method.execute``).

Weights are seeded, not trained: timing does not depend on them. ExecuTorch's thread pool is
process-wide, so 1 vs 2 threads cannot be interleaved; everything runs on 1 thread, as the
harness does.

    .venv/bin/python benchmarks/runtime_options.py [--rounds 30] [--calls 200] [--instances 3]
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from edge_opt.compress.pruning import structured_channel_prune
from edge_opt.measure.harness import HarnessSettings, measure_interleaved
from edge_opt.measure.statistics import paired_speedup
from edge_opt.models.zoo import SmallCNN
from edge_opt.runtimes.executorch import load_method, lower_to_executorch
from edge_opt.runtimes.onnxruntime import export_onnx, quantize_onnx_int8
from edge_opt.runtimes.ort_sessions import OrtOptions, ort_session

Factory = Callable[[], Callable[[], object]]  # builds one fresh instance, returns its call
_LOADED: list[object] = []


def ort_factory(path: Path, x: torch.Tensor, options: OrtOptions, binding: bool = True):
    feed_array = np.ascontiguousarray(x.numpy())

    def build() -> Callable[[], object]:
        session = ort_session(path, 1, options)
        name = session.get_inputs()[0].name
        if not binding:
            feed = {name: feed_array}
            return lambda: session.run(None, feed)
        io = session.io_binding()
        io.bind_cpu_input(name, feed_array)
        io.bind_output(session.get_outputs()[0].name, "cpu")
        return lambda: session.run_with_iobinding(io)

    return build


def pte_factory(path: Path, x: torch.Tensor, clone: bool = False):
    feed = [x.contiguous()]

    def build() -> Callable[[], object]:
        program, method = load_method(path, 1)
        _LOADED.append(program)  # a method needs its program alive
        return lambda: method.call(feed, clone_outputs=clone)

    return build


def options_for(model: torch.nn.Module, x: torch.Tensor, folder: Path) -> dict[str, Factory]:
    """Every option's instance factory; the first of each family is today's default."""
    torch.manual_seed(1)
    calibration = [torch.randn(64, *x.shape[1:]) for _ in range(4)]
    fp32 = export_onnx(model, x, folder / "fp32.onnx")
    name = ort_session(fp32, 1).get_inputs()[0].name
    int8: dict[str, Path] = {}
    for fmt in ("qdq", "qoperator"):
        for per_channel in (True, False):
            target = folder / f"int8_{fmt}_{'pc' if per_channel else 'pt'}.onnx"
            int8[f"{fmt} {'per-channel' if per_channel else 'per-tensor'}"] = quantize_onnx_int8(
                fp32, target, name, calibration, quant_format=fmt, per_channel=per_channel
            )
    pte: dict[str, Path] = {}
    for label, precision, per_channel, per_op in (
        ("fp32", "fp32", True, False),
        ("fp32 per_op_mode", "fp32", True, True),
        ("int8", "int8", True, False),
        ("int8 per-tensor", "int8", False, False),
        ("int8 per_op_mode", "int8", True, True),
    ):
        program = lower_to_executorch(
            model, precision, calibration, x, per_channel=per_channel, per_op_mode=per_op
        )
        pte[label] = folder / f"{label.replace(' ', '_')}.pte"
        pte[label].write_bytes(program.buffer)
    eager = model.eval()
    return {
        "eager fp32": lambda: lambda: eager(x),
        "ort fp32 default (level all, io binding)": ort_factory(fp32, x, OrtOptions()),
        "ort fp32 level extended": ort_factory(fp32, x, OrtOptions(optimization_level="extended")),
        "ort fp32 level basic": ort_factory(fp32, x, OrtOptions(optimization_level="basic")),
        "ort fp32 level disable": ort_factory(fp32, x, OrtOptions(optimization_level="disable")),
        "ort fp32 no spinning": ort_factory(fp32, x, OrtOptions(allow_spinning=False)),
        "ort fp32 no mem pattern": ort_factory(fp32, x, OrtOptions(memory_pattern=False)),
        "ort fp32 parallel mode": ort_factory(fp32, x, OrtOptions(parallel=True)),
        "ort fp32 session.run feed dict": ort_factory(fp32, x, OrtOptions(), binding=False),
        "ort int8 default (qdq per-channel)": ort_factory(int8["qdq per-channel"], x, OrtOptions()),
        "ort int8 qdq per-tensor": ort_factory(int8["qdq per-tensor"], x, OrtOptions()),
        "ort int8 qoperator per-channel": ort_factory(
            int8["qoperator per-channel"], x, OrtOptions()
        ),
        "ort int8 qoperator per-tensor": ort_factory(int8["qoperator per-tensor"], x, OrtOptions()),
        "et fp32 default": pte_factory(pte["fp32"], x),
        "et fp32 per_op_mode": pte_factory(pte["fp32 per_op_mode"], x),
        "et fp32 outputs cloned": pte_factory(pte["fp32"], x, clone=True),
        "et int8 default (per-channel)": pte_factory(pte["int8"], x),
        "et int8 per-tensor": pte_factory(pte["int8 per-tensor"], x),
        "et int8 per_op_mode": pte_factory(pte["int8 per_op_mode"], x),
        "et int8 outputs cloned": pte_factory(pte["int8"], x, clone=True),
    }


def default_of(key: str) -> str:
    """The default an option is compared with: the first key of its family."""
    family = " ".join(key.split()[:2])  # e.g. "ort fp32"
    return {
        "eager fp32": "eager fp32",
        "ort fp32": "ort fp32 default (level all, io binding)",
        "ort int8": "ort int8 default (qdq per-channel)",
        "et fp32": "et fp32 default",
        "et int8": "et int8 default (per-channel)",
    }[family]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--levels", default="0.0,0.5", help="pruning levels, comma-separated")
    args = parser.parse_args()
    settings = HarnessSettings(
        threads=1,
        warmup_min=20,
        calls_per_round=args.calls,
        min_rounds=args.rounds,
        max_rounds=args.rounds,
        precision=0.001,  # never stop early: every option gets every round (paired ratios)
        time_cap_s=600.0,
    )
    torch.manual_seed(0)
    base = SmallCNN().eval()
    x = torch.randn(1, 1, 28, 28)
    print(
        f"batch 1, 1 thread, {args.rounds} interleaved rounds x {args.calls} calls, "
        f"{args.instances} fresh instances per option"
    )
    for level in (float(v) for v in args.levels.split(",")):
        model = structured_channel_prune(base, level, x) if level > 0 else base
        with tempfile.TemporaryDirectory(prefix="edge-opt-options-") as tmp:
            factories = options_for(model, x, Path(tmp))
            calls = {k: [f() for _ in range(args.instances)] for k, f in factories.items()}
            stats = measure_interleaved(calls, settings, anchor="eager fp32")
        print(f"\nSmallCNN pruned {level:.0%}")
        print(
            f"{'option':38s} {'p50 ms':>8s} {'95% CI':>17s} {'vs default':>10s} "
            f"{'IQR of ratios':>13s} {'vs eager':>8s} noisy"
        )
        for key, s in stats.items():
            ratio = paired_speedup(stats[default_of(key)], s)
            eager = paired_speedup(stats["eager fp32"], s)
            print(
                f"{key:38s} {s.p50_ms:8.4f} [{s.p50_ci95_low_ms:.4f}, {s.p50_ci95_high_ms:.4f}]"
                f" {ratio.median:9.2f}x [{ratio.q25:.2f}, {ratio.q75:.2f}] {eager.median:7.2f}x"
                f" {s.noisy}"
            )


if __name__ == "__main__":
    main()
