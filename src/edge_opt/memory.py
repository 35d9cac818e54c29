"""Runtime memory: the peak of live activations (a liveness walk) and a measured peak-RSS delta.

``runtime_memory_mb`` = serialized weights + peak live activations at the latency batch.
The liveness walk executes the model node by node (``torch.fx``) and, at every node, adds up the
distinct tensor storages still alive (inputs not yet consumed by their last user, plus the new
output); views share storage and count once, and dtypes are the real ones (int8 activations are
1 byte). Weights and constants (``get_attr``) are excluded: they are in the serialized size.

``measured_peak_rss_mb`` is a measurement beside that model: a fresh child process loads the
candidate, resets its peak-RSS mark (``/proc/self/clear_refs``), runs one inference and reports
VmHWM minus the RSS before the call. It includes allocator and kernel workspace effects.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from edge_opt.hooks import run_with_leaf_hooks

BYTES_PER_MB = 2**20


@dataclass(frozen=True)
class ActivationPeak:
    peak_bytes: int
    at_node: str
    method: str  # "fx liveness" or "hooks (approximate)"


def _storages(value: Any) -> dict[int, int]:
    """data_ptr -> nbytes of every tensor storage in a (nested) value."""
    found: dict[int, int] = {}
    if isinstance(value, torch.Tensor):
        if value.is_quantized:
            found[value.data_ptr()] = value.numel() * value.element_size()
        else:
            storage = value.untyped_storage()
            found[storage.data_ptr()] = storage.nbytes()
    elif isinstance(value, list | tuple):
        for item in value:
            found.update(_storages(item))
    elif isinstance(value, dict):
        for item in value.values():
            found.update(_storages(item))
    return found


class _LivenessInterpreter(fx.Interpreter):
    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module, garbage_collect_values=True)
        self.peak, self.at = 0, ""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if n.op in ("call_module", "call_function", "call_method", "placeholder"):
            live: dict[int, int] = {}
            for node, value in self.env.items():
                if node.op != "get_attr":
                    live.update(_storages(value))
            live.update(_storages(result))
            total = sum(live.values())
            if total > self.peak:
                self.peak, self.at = total, n.name
        return result


def peak_activation_bytes(model: nn.Module, example: torch.Tensor) -> ActivationPeak:
    """Peak bytes of live activations during one forward pass of ``model(example)``."""
    module = model if isinstance(model, fx.GraphModule) else None
    if module is None:
        try:
            module = fx.symbolic_trace(copy.deepcopy(model))
        except Exception:  # untraceable (data-dependent control flow): approximate with hooks
            return _hook_peak(model, example)
    interpreter = _LivenessInterpreter(module)
    with torch.inference_mode():
        interpreter.run(example)
    return ActivationPeak(interpreter.peak, interpreter.at, "fx liveness")


def _hook_peak(model: nn.Module, example: torch.Tensor) -> ActivationPeak:
    peak, at = [example.numel() * example.element_size()], [""]

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        total = sum(_storages(inputs).values()) + sum(_storages(output).values())
        if total > peak[0]:
            peak[0], at[0] = total, type(module).__name__

    run_with_leaf_hooks(model, example, hook)
    return ActivationPeak(peak[0], at[0], "hooks (approximate)")


_PROBE = r"""
import sys, torch
torch.set_num_threads(int(sys.argv[3]))
path = sys.argv[1]
x = torch.load(sys.argv[2], weights_only=True)
if path.endswith(".onnx"):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(sys.argv[3])
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.float().numpy()}
    model = lambda _x: session.run(None, feed)
elif path.endswith(".ts"):
    model = torch.jit.load(path)
else:
    model = torch.load(path, weights_only=False)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
def one_call():
    rss = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    with torch.inference_mode():
        model(x)
    return status("VmHWM") - rss
print(one_call(), one_call())
"""


@dataclass(frozen=True)
class RssProbe:
    """Peak-RSS growth (MiB) of the first (cold) and second (warm) inference in a fresh process."""

    cold_mb: float | None
    warm_mb: float | None
    note: str


def _save_for_probe(model: nn.Module, example: torch.Tensor, folder: Path) -> Path:
    # TorchScript first: it is what a deployment would load, and FX-quantized graphs do not
    # pickle. Plain pickling is the fallback for models tracing cannot handle.
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit is deprecated in 2.13 and says so
            traced = torch.jit.trace(model, example, check_trace=False)
            path = folder / "model.ts"
            torch.jit.save(traced, str(path))
    except Exception:
        path = folder / "model.pt"
        torch.save(model, path)
    return path


def measure_peak_rss_delta_mb(
    model: nn.Module,
    example: torch.Tensor,
    threads: int = 1,
    timeout_s: float = 120.0,
    onnx_path: Path | None = None,
) -> RssProbe:
    """Run the model once cold and once warm in a fresh child process; measure peak-RSS growth.

    With ``onnx_path`` the child runs that ONNX file in ONNX Runtime instead of ``model``.
    """
    if not Path("/proc/self/clear_refs").exists():
        return RssProbe(None, None, "unavailable: /proc/self/clear_refs is missing (not Linux)")
    with tempfile.TemporaryDirectory(prefix="edge-opt-rss-") as tmp:
        input_path = Path(tmp) / "input.pt"
        try:
            model_path = (
                onnx_path if onnx_path is not None else _save_for_probe(model, example, Path(tmp))
            )
        except Exception as exc:  # neither traceable nor picklable: say so rather than guess
            return RssProbe(None, None, f"unavailable: model cannot be saved for the probe ({exc})")
        torch.save(example, input_path)
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, str(model_path), str(input_path), str(threads)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return RssProbe(None, None, f"probe failed: {last}")
    cold, warm = (max(0, int(v)) / BYTES_PER_MB for v in proc.stdout.split()[-2:])
    return RssProbe(cold, warm, f"measured ({model_path.suffix[1:]})")
