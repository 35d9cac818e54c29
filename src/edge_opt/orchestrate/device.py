"""The target device as a node of the run's cluster: connecting, and timing candidates there.

Measure tasks (``executors.device.measure_onnx``) time the candidates a torch-free device can
run (the runtimes whose registry entry says so) on the node that carries the device's resource,
one at a time there, with the same harness as this host. Each finished one is cached, so a
device that leaves mid-run costs only the candidates it had not measured (``--resume``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from edge_opt.candidates.record import CandidateResult, DeviceTiming
from edge_opt.config.sections import ExecutorSpec
from edge_opt.errors import DeviceLostError
from edge_opt.infra.cache import ArtifactCache, content_key, sha256_bytes
from edge_opt.measure.harness import HarnessSettings
from edge_opt.measure.statistics import LatencyStats
from edge_opt.orchestrate.executors.base import Executor, NodeInfo, TaskFailure
from edge_opt.orchestrate.executors.device import MeasurePayload, measure_onnx
from edge_opt.runtimes.base import RuntimeModel
from edge_opt.runtimes.build import runs_on_device_nodes

log = logging.getLogger(__name__)


@dataclass
class Cluster:
    """The executor of a distributed run, this host's node and the target device's node."""

    executor: Executor
    host: NodeInfo
    resource: str | None
    device: NodeInfo | None

    def close(self) -> None:
        self.executor.close()


def open_cluster(spec: ExecutorSpec) -> Cluster:
    """Connect to the executor ``spec`` names (the local one: nothing to connect to).

    Raises:
        ExecutorError: Ray cannot connect, or no node carries ``device_resource`` after
            ``device_wait_s`` (checked before any work, so a missing device costs seconds).
    """
    from edge_opt.errors import ExecutorError
    from edge_opt.orchestrate.executors.base import make_executor, this_node

    executor = make_executor(spec)
    host = this_node(getattr(executor, "node_id", "local"))
    if spec.device_resource is None:
        return Cluster(executor, host, None, None)
    device = executor.device_node(spec.device_resource)
    if device is None:
        executor.close()
        join = (
            "an embedded Ray (`address: local`) listens on 127.0.0.1 only, so no device "
            "can join it: start a head with `ray start --head` and use `address: auto`"
            if spec.address == "local"
            else f"start the device with `ray start --address=HEAD_IP:6379 --num-cpus=0 "
            f"--resources='{{\"{spec.device_resource}\": 1}}'`"
        )
        raise ExecutorError(
            f"executor.device_resource: no node of the Ray cluster carries "
            f"{spec.device_resource!r} after waiting {spec.device_wait_s:g} s; {join} "
            "(docs/devices.md: device nodes), or remove device_resource to time on this "
            "machine only"
        )
    log.info("device node: %s", device.describe())
    return Cluster(executor, host, spec.device_resource, device)


def _device_key(
    model: bytes, sample: torch.Tensor, resource: str, settings: HarnessSettings, instances: int
) -> str:
    return content_key(
        "device_timing",
        {
            "model_sha256": sha256_bytes(model),
            "sample_sha256": hashlib.sha256(sample.numpy().tobytes()).hexdigest(),
            "resource": resource,
            "harness": asdict(settings),
            "instances": instances,
        },
    )


@dataclass(frozen=True)
class DeviceRun:
    """How candidates are timed on the device."""

    resource: str
    latency_input: torch.Tensor
    settings: HarnessSettings
    instances: int


def measure_on_device(
    executor: Executor,
    run: DeviceRun,
    records: Sequence[CandidateResult],
    built: Mapping[str, RuntimeModel],
    cache: ArtifactCache,
) -> tuple[list[CandidateResult], dict[str, list[float]]]:
    """Time every ok candidate a device node can run (one task each, one at a time there);
    returns the records with their ``device`` timing and every per-call sample (ms).

    Raises:
        DeviceLostError: some candidates could not be measured (the device left); the finished
            ones are cached, so ``--resume`` measures only the rest.
    """
    ids = [
        r.candidate_id
        for r in records
        if r.status == "ok"
        and runs_on_device_nodes(r.runtime)
        and built.get(r.candidate_id) is not None
        and built[r.candidate_id].artifact is not None
    ]
    results: dict[str, dict[str, Any]] = {}
    payloads, keys = [], {}
    for cid in ids:
        model = Path(built[cid].artifact).read_bytes()  # type: ignore[arg-type]
        keys[cid] = _device_key(model, run.latency_input, run.resource, run.settings, run.instances)
        entry = cache.get("device_timing", keys[cid])
        if entry is not None:
            results[cid] = entry.meta["result"]
            continue
        sample = run.latency_input.numpy()
        payloads.append(MeasurePayload(cid, model, sample, run.settings, run.instances))
    if payloads:
        log.info("timing %d candidate(s) on the device node (%s)", len(payloads), run.resource)
    lost: dict[str, TaskFailure] = {}
    for index, result in executor.measure(run.resource, measure_onnx, payloads):
        cid = payloads[index].candidate_id
        if isinstance(result, TaskFailure):
            lost[cid] = result
            continue
        results[cid] = result
        cache.put("device_timing", keys[cid], {"result": result})
        log.info("device: %s p50 %.4f ms", cid, float(result["stats"]["p50_ms"]))
    if lost:
        first = next(iter(lost.values()))
        raise DeviceLostError(
            f"executor.device_resource {run.resource!r}: {len(lost)} of {len(ids)} "
            f"candidate(s) could not be timed on the device ({first.describe()}); the "
            f"{len(results)} finished are kept: bring the device back and run again with --resume"
        )
    timed = {
        cid: DeviceTiming(
            LatencyStats(**result["stats"]), NodeInfo.from_dict(result["node"]).describe()
        )
        for cid, result in results.items()
    }
    out = [replace(r, device=timed.get(r.candidate_id)) for r in records]
    return out, {cid: list(result["samples_ms"]) for cid, result in results.items()}
