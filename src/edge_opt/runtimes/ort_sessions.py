"""ONNX Runtime sessions as edge-opt builds and times them, without torch.

One place for the session options and the timed call, shared by the ``onnxruntime`` runtime
(this host) and the measure task a device node runs (``executors.device``, no torch there), so
host and device figures time the same work. The defaults are the choices
``benchmarks/runtime_options.py`` measured (docs/runtimes.md, "Runtime options").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

OptimizationLevel = Literal["disable", "basic", "extended", "all"]


@dataclass(frozen=True)
class OrtOptions:
    """ONNX Runtime session options for one candidate (threads are the harness's)."""

    optimization_level: OptimizationLevel = "all"
    inter_op_threads: int = 1
    parallel: bool = False  # ORT_PARALLEL execution mode (operators side by side)
    allow_spinning: bool = True  # session.intra_op.allow_spinning
    memory_pattern: bool = True  # enable_mem_pattern


def ort_session(model: Path | bytes, threads: int, options: OrtOptions | None = None) -> Any:
    """An ONNX Runtime CPU session of a file (or its bytes) with ``threads`` intra-op threads."""
    import onnxruntime as ort

    chosen = options or OrtOptions()
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = threads  # the same thread budget as torch's timing
    session_options.inter_op_num_threads = chosen.inter_op_threads
    session_options.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if chosen.parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    session_options.graph_optimization_level = levels[chosen.optimization_level]
    session_options.enable_mem_pattern = chosen.memory_pattern
    session_options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if chosen.allow_spinning else "0"
    )
    session_options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, session_options, providers=["CPUExecutionProvider"])


def bound_call(session: Any, feed: np.ndarray) -> Callable[[], object]:
    """The timed call: the input bound once with I/O binding, as an application keeps its input
    buffer (1.15x faster than ``session.run`` with a feed dict at batch 1, runtime_options.py).
    The binding holds ``feed``: its OrtValue points into that array."""
    binding = session.io_binding()
    binding.bind_cpu_input(session.get_inputs()[0].name, feed)
    binding.bind_output(session.get_outputs()[0].name, "cpu")
    return lambda: session.run_with_iobinding(binding)
