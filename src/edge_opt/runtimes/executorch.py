"""``executorch``: the model lowered to ExecuTorch's XNNPACK delegate as one ``.pte`` program,
run through ExecuTorch's Python runtime (``portable_lib``, which ``executorch.runtime`` wraps):
what a PyTorch user deploys to a Raspberry Pi or a phone.

- fp32: ``torch.export`` at the deployment batch -> ``to_edge_transform_and_lower`` with
  ``XnnpackPartitioner`` -> ``.pte``.
- int8: PT2E with ``XNNPACKQuantizer`` (symmetric, per-channel weights, static activations)
  calibrated on the same batches as every int8 candidate, then lowered the same way; the
  quantize/dequantize pairs fold into XNNPACK's qs8 kernels.
- fp16/bf16 are not built (skipped rows, with the reason).

The program has a static batch (the deployment batch, ``latency_batch_size``): dynamic batch
bounds are not honoured by executorch 1.5.1's memory planning (an upper bound of 256 was
planned as 15 rows). Larger inputs (evaluation, throughput) run as consecutive calls of that
batch, the last one zero-padded, which is what the deployed program would do.

Threads: the XNNPACK delegate runs on ExecuTorch's one process-wide pthreadpool, sized at first
use to the cores cpuinfo reports (2 here) whatever ``torch.set_num_threads`` says; the Python
runtime has no per-program option, so ``portable_lib._unsafe_reset_threadpool(n)`` sets it to
the harness's thread count (``unsafe``: not while a program executes; ours run in this thread).
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_opt.compress.quantization import ConvertedModel
from edge_opt.errors import QuantizationError, RuntimeBuildError
from edge_opt.runtimes.base import BuildRequest, RuntimeModel
from edge_opt.runtimes.compiled import quantize_pt2e

_NOT_BUILT = "edge-opt lowers only fp32 and int8 (PT2E) to ExecuTorch's XNNPACK delegate"


@dataclass(frozen=True)
class PteProgram:
    """A lowered program: its bytes and which operators XNNPACK took (node counts by type)."""

    buffer: bytes
    delegated_ops: dict[str, int] = field(default_factory=dict)
    non_delegated_ops: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2: ExecuTorch's C++ logging prints cpuinfo probes and thread
    pool resets there on import, which would land in the user's terminal."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _portable_lib() -> Any:
    try:
        with _quiet_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "experimental API" on import, not actionable
            import executorch.extension.pybindings.portable_lib as portable_lib
    except ImportError as exc:
        raise RuntimeBuildError(
            f"runtime 'executorch' needs the executorch package ({exc}); "
            "install edge-opt[executorch] or drop executorch from runtimes"
        ) from None
    return portable_lib


def set_threadpool_threads(threads: int) -> int:
    """Size ExecuTorch's process-wide thread pool (XNNPACK's) to ``threads``; returns it."""
    lib = _portable_lib()
    with _quiet_stderr():  # the pool's first use probes cpuinfo, and says so on stderr
        if lib._threadpool_get_thread_count() != threads:
            lib._unsafe_reset_threadpool(threads)
        return int(lib._threadpool_get_thread_count())


def _xnnpack_int8(
    model: nn.Module, calibration: Sequence[torch.Tensor], example: torch.Tensor, per_channel: bool
) -> nn.Module:
    try:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )
    except ImportError as exc:
        raise QuantizationError(f"ExecuTorch int8 needs executorch ({exc})") from None
    if not calibration:
        raise QuantizationError("ExecuTorch int8 needs calibration batches; got none")
    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=per_channel))
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        # The conv+batch-norm patterns cannot match a graph without batch norm, and each is
        # found by exporting its pattern graph: 2.7 s of a 3.5 s int8 lowering (SmallCNN,
        # measured). The annotations, and so the program, are the same without them.
        quantizer.SUPPORTED_PATTERNS = [
            p for p in XNNPACKQuantizer.SUPPORTED_PATTERNS if "_bn" not in p.name
        ]
    return quantize_pt2e(model, quantizer, calibration, example, "ExecuTorch int8 (PT2E)")


def _op_counts(graph_module: Any) -> tuple[dict[str, int], dict[str, int]]:
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    table = info.delegation_by_operator.values()
    delegated = {b.op_type: b.delegated for b in table if b.delegated}
    other = {b.op_type: b.non_delegated for b in table if b.non_delegated}
    return delegated, other


def lower_to_executorch(
    float_model: nn.Module,
    precision: str,
    calibration: Sequence[torch.Tensor],
    example: torch.Tensor,
    *,
    per_channel: bool = True,
    per_op_mode: bool = False,
) -> PteProgram:
    """Lower a float model (int8: quantized first) to an XNNPACK-delegated ExecuTorch program.

    Args:
        float_model: the pruned float model (not modified).
        precision: ``fp32`` or ``int8``.
        calibration: float batches for int8.
        example: one float input at the deployment batch (the program's static shape).
        per_channel: int8 weights per output channel (else per tensor).
        per_op_mode: one XNNPACK subgraph per operator instead of the largest partitions.

    Raises:
        RuntimeBuildError: a precision other than fp32/int8, or a failed export or lowering.
        QuantizationError: PT2E quantization failed.
    """
    if precision not in ("fp32", "int8"):
        raise RuntimeBuildError(f"precision {precision!r}: {_NOT_BUILT}")
    try:
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower
    except ImportError as exc:
        raise RuntimeBuildError(
            f"runtime 'executorch' needs the executorch package ({exc}); "
            "install edge-opt[executorch] or drop executorch from runtimes"
        ) from None
    float_copy = copy.deepcopy(float_model).float().eval()
    source = (
        _xnnpack_int8(float_copy, calibration, example, per_channel)
        if precision == "int8"
        else float_copy
    )
    try:
        with torch.no_grad():
            exported = torch.export.export(source, (example.float().contiguous(),))
        edge = to_edge_transform_and_lower(
            exported, partitioner=[XnnpackPartitioner(per_op_mode=per_op_mode)]
        )
        delegated, other = _op_counts(edge.exported_program().graph_module)
        buffer = edge.to_executorch().buffer
    except Exception as exc:
        raise RuntimeBuildError(f"ExecuTorch lowering failed: {type(exc).__name__}: {exc}") from exc
    return PteProgram(bytes(buffer), delegated, other)


def load_method(path: Path, threads: int) -> tuple[Any, Any]:
    """Load ``path`` as a new program; returns (program, its ``forward`` method).

    Through ``portable_lib`` (what ``executorch.runtime`` wraps): its method can return its
    outputs without copying them (``call(inputs, clone_outputs=False)``), as a deployed program
    does; ``benchmarks/runtime_options.py`` measured the copy at 4-8% of a SmallCNN call.
    """
    if not path.is_file():
        raise RuntimeBuildError(f"{path}: no such ExecuTorch program; rebuild the candidate")
    set_threadpool_threads(threads)
    lib = _portable_lib()
    try:
        program = lib._load_program(
            str(path), program_verification=lib.Verification.InternalConsistency
        )
        method = program.load_method("forward")
    except Exception as exc:
        raise RuntimeBuildError(
            f"{path}: not a loadable ExecuTorch program ({type(exc).__name__}: {exc}); "
            "delete it or rebuild the candidate"
        ) from None
    return program, method


def _chunks(x: torch.Tensor, batch: int) -> list[torch.Tensor]:
    """``x`` as consecutive batches of exactly ``batch`` rows, the last one zero-padded."""
    x = x.float().contiguous()
    chunks = list(torch.split(x, batch))
    short = batch - chunks[-1].shape[0]
    if short:
        pad = torch.zeros(short, *x.shape[1:], dtype=x.dtype)
        chunks[-1] = torch.cat([chunks[-1], pad])
    return [c.contiguous() for c in chunks]


class _Program:
    """A loaded program and its ``forward`` method (the method needs its program alive)."""

    def __init__(self, path: Path, threads: int) -> None:
        self.program, self.method = load_method(path, threads)
        self.batch = int(self.method.method_meta().input_tensor_meta(0).sizes()[0])

    def run(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return self.method.call(inputs)[0]  # a copy: the planned output buffer is reused

    def run_uncopied(self, inputs: list[torch.Tensor]) -> object:
        return self.method.call(inputs, clone_outputs=False)


def pte_model(path: Path, threads: int, converted: ConvertedModel) -> RuntimeModel:
    """Load ``path``; its twin is another program loaded from the same file."""
    loaded = _Program(path, threads)

    def predict(x: torch.Tensor) -> torch.Tensor:
        outputs = [loaded.run([chunk]) for chunk in _chunks(x, loaded.batch)]
        return torch.cat(outputs)[: x.shape[0]].float()

    def timed_call(x: torch.Tensor) -> Callable[[], object]:
        feeds = [[chunk] for chunk in _chunks(x, loaded.batch)]
        if len(feeds) == 1:
            feed = feeds[0]
            return lambda: loaded.run_uncopied(feed)
        return lambda: [loaded.run_uncopied(f) for f in feeds]

    return RuntimeModel(
        "executorch",
        converted.precision,
        predict,
        timed_call,
        os.path.getsize(path),
        converted,
        artifact=path,
        reload=lambda n: pte_model(path, n, converted),
        static_batch=loaded.batch,
    )


def build_executorch(request: BuildRequest) -> RuntimeModel:
    if request.artifact is not None:  # built by an earlier run (the resume cache): load it
        return pte_model(request.artifact, request.threads, request.converted)
    lowered = lower_to_executorch(
        request.float_model, request.precision, request.calibration, request.example
    )
    path = request.workdir / f"model_{request.precision}.pte"
    path.write_bytes(lowered.buffer)
    return pte_model(path, request.threads, request.converted)
