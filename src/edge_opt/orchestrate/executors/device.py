"""What a device node runs: time an ONNX model with the edge-opt harness, no torch needed.

A device (a Raspberry Pi, a Jetson) joins the cluster with only Ray, ONNX Runtime and numpy
installed (docs/devices.md, Distributed runs and device nodes). A measure task receives the model's
bytes, one input batch and the harness settings, builds ``instances`` independent ONNX Runtime
sessions (``edge_opt.runtimes.ort_sessions``: the session options and timed call the host
uses), times them in interleaved rounds with ``edge_opt.measure.harness.measure_interleaved``,
and returns plain
data: the latency statistics, every kept per-call time, and the node as it describes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_opt.measure.harness import HarnessSettings, measure_interleaved
from edge_opt.orchestrate.executors.base import this_node
from edge_opt.runtimes.ort_sessions import bound_call, ort_session


@dataclass(frozen=True)
class MeasurePayload:
    """One measure task: a candidate's ONNX bytes and how to time it."""

    candidate_id: str
    model: bytes
    sample: np.ndarray  # (batch, C, H, W) float32, the run's latency batch
    settings: HarnessSettings
    instances: int


def measure_onnx(payload: MeasurePayload) -> dict[str, Any]:
    """Time one ONNX candidate here; returns JSON-able data (stats, samples, node)."""
    node_id = "local"
    try:  # the node id Ray knows this machine by, when run as a Ray task
        import ray

        if ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    sessions = [
        ort_session(payload.model, payload.settings.threads)
        for _ in range(max(1, payload.instances))
    ]
    feed = np.ascontiguousarray(payload.sample, dtype=np.float32)
    calls = [bound_call(s, feed) for s in sessions]
    raw: dict[str, list[float]] = {}
    key = payload.candidate_id
    stats = measure_interleaved(
        {key: calls}, payload.settings, {key: int(payload.sample.shape[0])}, raw_samples=raw
    )[key]
    return {
        "candidate_id": key,
        "stats": stats.to_dict(),
        "samples_ms": raw[key],
        "node": this_node(node_id).to_dict(),
    }
