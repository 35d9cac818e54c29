"""The sweep's tasks on a distributed executor: prepare fans out, measure goes to the device.

Prepare tasks (``variant_task``: prune and fine-tune one level; ``candidate_task``: convert,
export and evaluate the candidates of one level and runtime) run wherever the executor puts
them and return what the run's content-keyed cache holds (weights, an ONNX file, accuracy and
predictions as JSON). The driver stores each result under the key the local code computes, so
the local stages that follow find every finished piece in the cache: one cache, the one
``--resume`` uses, and nothing prepared twice. Results equal the local executor's: a level's
fine-tuning shuffles by its own seed (``tasks.level_loader``) and evaluation sees the same
batches.

Measure tasks (``executors.device.measure_onnx``) time the ONNX Runtime candidates on the
target device's node, one at a time; each finished one is cached, so a device that leaves
mid-run costs only the candidates it had not measured (``--resume``).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from edge_opt.candidates.plan import SweepPlan, candidate_id
from edge_opt.candidates.preparation import (
    PrepareContext,
    VariantSettings,
    level_reference,
    prepare_candidate,
    prune_variant,
    variant_key,
)
from edge_opt.config.sections import ExecutorSpec
from edge_opt.data.splits import batch_loader, loader_batch_size
from edge_opt.errors import DeviceLostError
from edge_opt.infra.cache import (
    ArtifactCache,
    content_key,
    sha256_bytes,
    state_dict_bytes,
)
from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.measure.harness import HarnessSettings
from edge_opt.measure.statistics import LatencyStats
from edge_opt.orchestrate.executors.base import Executor, NodeInfo, TaskFailure
from edge_opt.orchestrate.executors.device import MeasurePayload, measure_onnx
from edge_opt.runtimes.base import RuntimeModel

if TYPE_CHECKING:
    from edge_opt.decide.recommend import Recommendation

log = logging.getLogger(__name__)

DEVICE_COLUMNS = (
    "device_latency_p50_ms",
    "device_latency_p50_ci95_low_ms",
    "device_latency_p50_ci95_high_ms",
    "device_latency_p95_ms",
    "device_latency_mean_ms",
    "device_latency_std_ms",
    "device_noisy",
    "device_measured_on",
)
DEVICE_RUNTIMES = ("onnxruntime",)  # what a device without torch can run


# ----------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class VariantShared:
    """What every variant task of a run shares (put once in the object store)."""

    base_model: nn.Module
    train: Dataset
    batch_size: int
    settings: VariantSettings


def variant_task(shared: VariantShared, level: float) -> bytes:
    """Prune and fine-tune one level; returns its state dict (``torch.save`` bytes)."""
    loader = batch_loader(shared.train, shared.batch_size, shuffle=True)
    return state_dict_bytes(prune_variant(shared.base_model, level, loader, shared.settings))


def prepare_variants_remotely(
    executor: Executor,
    base_model: nn.Module,
    levels: Sequence[float],
    train_loader: DataLoader,
    settings: VariantSettings,
    cache: ArtifactCache,
    train_fingerprint: str,
    progress: Progress | None = None,
) -> dict[float, TaskFailure]:
    """Fine-tune every level missing from ``cache`` as parallel tasks; store their weights
    under the key ``tasks.prune_variants`` looks up. Returns the levels whose task failed
    (``prune_variants`` then makes them here)."""
    base_sha = sha256_bytes(state_dict_bytes(base_model)) if cache.enabled else ""
    keys = {
        level: variant_key(
            base_sha,
            level,
            settings.scope,
            settings.fine_tune_epochs,
            settings.learning_rate,
            settings.seed,
            train_fingerprint,
            settings.input_shape,
            settings.channel_multiple,
            settings.train_threads,
        )
        for level in levels
    }
    missing = [level for level in levels if cache.get("variant", keys[level]) is None]
    if not missing or settings.fine_tune_epochs <= 0:
        return {}
    log.info("preparing %d pruning level(s) as %s tasks", len(missing), executor.kind)
    shared = VariantShared(
        base_model, train_loader.dataset, loader_batch_size(train_loader), settings
    )
    failures: dict[float, TaskFailure] = {}
    progress = progress or NullProgress()
    progress.start(f"fine-tuning ({executor.kind} tasks)", len(missing), "levels")
    for index, result in executor.prepare(variant_task, shared, missing):
        level = missing[index]
        progress.advance(1, f"p{round(level * 100):02d}")
        if isinstance(result, TaskFailure):
            failures[level] = result
            log.warning("pruning level %.2f: %s; it is made here", level, result.describe())
            continue
        cache.put("variant", keys[level], {"level": level}, {"weights.pt": result})
        log.info("pruning level %.2f: fine-tuned by a task", level)
    progress.finish()
    return failures


# --------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class CandidateShared:
    """What every candidate task of a sweep shares."""

    plan: SweepPlan
    variants: Mapping[float, nn.Module]
    variant_sha256: Mapping[float, str]
    macs: Mapping[float, int]
    val: Dataset
    test: Dataset | None
    batch_size: int
    calibration: list[torch.Tensor]
    latency_input: torch.Tensor
    check_batch: torch.Tensor
    input_shape: tuple[int, int, int]


def candidate_task(
    shared: CandidateShared, group: tuple[float, str, tuple[str, ...]]
) -> list[dict[str, Any]]:
    """Convert, export and evaluate the candidates of one pruning level and runtime, one
    precision after the other (an int8 ONNX Runtime candidate quantizes the file its fp32
    sibling exported); returns each one's cache entry as plain data, in ``group``'s order."""
    level, runtime, precisions = group
    model = shared.variants[level]
    # Quantized kernels dispatch on this process-wide setting: the driver's (pipeline sets it).
    torch.backends.quantized.engine = shared.plan.quantization_backend
    with tempfile.TemporaryDirectory(prefix="edge-opt-task-") as tmp:
        cache = ArtifactCache(Path(tmp) / "cache")
        ctx = PrepareContext(
            shared.plan,
            batch_loader(shared.val, shared.batch_size),
            None if shared.test is None else batch_loader(shared.test, shared.batch_size),
            list(shared.calibration),
            shared.latency_input,
            shared.input_shape,
            Path(tmp),
            cache,
        )
        reference = level_reference(model, shared.check_batch)
        sha = shared.variant_sha256[level]
        results = []
        for precision in precisions:
            prepared = prepare_candidate(
                model, sha, level, precision, runtime, ctx, reference, shared.macs[level]
            )
            if prepared.error is not None:
                results.append({"error": prepared.error})
                continue
            key = shared.plan.candidate_key(sha, precision, runtime)
            entry = cache.get("candidate", key)
            if entry is None:
                results.append({"error": "the task finished but its result was not stored"})
                continue
            meta = {k: v for k, v in entry.meta.items() if k not in ("files", "key", "kind")}
            files = {n: entry.read(n) for n in entry.meta["files"]}
            results.append({"key": key, "meta": meta, "files": files})
        return results


def _groups(items: Sequence[tuple[float, str, str]]) -> list[tuple[float, str, tuple[str, ...]]]:
    """Candidates grouped by (level, runtime), in plan order: one task per group."""
    grouped: dict[tuple[float, str], list[str]] = {}
    for level, precision, runtime in items:
        grouped.setdefault((level, runtime), []).append(precision)
    return [(level, runtime, tuple(ps)) for (level, runtime), ps in grouped.items()]


def prepare_candidates_remotely(
    executor: Executor,
    plan: SweepPlan,
    variants: Mapping[float, nn.Module],
    val_loader: DataLoader,
    test_loader: DataLoader | None,
    calibration: Sequence[torch.Tensor],
    latency_input: torch.Tensor,
    input_shape: tuple[int, int, int],
    cache: ArtifactCache,
    progress: Progress | None = None,
) -> dict[str, str]:
    """Prepare every candidate missing from ``cache`` as parallel tasks and store the results
    where ``execute_sweep`` looks. Returns id -> error for candidates that failed (a node that
    died after the retries, or a conversion error): they become ``failed`` rows."""
    from edge_opt.analysis.hardware import estimate_layerwise_stats
    from edge_opt.runtimes.build import unsupported_reason

    shas = {lv: sha256_bytes(state_dict_bytes(m)) for lv, m in variants.items()}
    items = [
        (level, precision, runtime)
        for level, precision, runtime in plan.candidates()
        if unsupported_reason(runtime, precision) is None
        and cache.get("candidate", plan.candidate_key(shas[level], precision, runtime)) is None
    ]
    if not items:
        return {}
    log.info(
        "preparing %d candidate(s) as %d %s tasks (one per level and runtime)",
        len(items),
        len(_groups(items)),
        executor.kind,
    )
    shared = CandidateShared(
        plan,
        dict(variants),
        shas,
        {
            lv: int(estimate_layerwise_stats(m, 1, input_shape)["macs"].sum())
            for lv, m in variants.items()
        },
        val_loader.dataset,
        None if test_loader is None else test_loader.dataset,
        loader_batch_size(val_loader),
        list(calibration),
        latency_input,
        next(iter(val_loader))[0],
        input_shape,
    )
    groups = _groups(items)
    failures: dict[str, str] = {}
    progress = progress or NullProgress()
    progress.start(f"preparing ({executor.kind} tasks)", len(items), "candidates")
    for index, outcome in executor.prepare(candidate_task, shared, groups):
        level, runtime, precisions = groups[index]
        ids = [candidate_id(level, precision, runtime) for precision in precisions]
        progress.advance(len(ids), ids[-1])
        if isinstance(outcome, TaskFailure):
            failures.update(dict.fromkeys(ids, outcome.describe()))
            continue
        for cid, result in zip(ids, outcome, strict=True):
            if "error" in result:
                failures[cid] = str(result["error"])
            else:
                cache.put("candidate", result["key"], result["meta"], result["files"])
                log.info("prepared %s in a task", cid)
    progress.finish()
    return failures


# ------------------------------------------------------------------------------- device
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


def measure_on_device(
    executor: Executor,
    resource: str,
    sweep: pd.DataFrame,
    built: Mapping[str, RuntimeModel],
    latency_input: torch.Tensor,
    settings: HarnessSettings,
    instances: int,
    cache: ArtifactCache,
) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """Time every ok ONNX Runtime candidate on the device node (one task each, one at a time
    there); returns the sweep with ``device_*`` columns and every per-call sample (ms).

    Raises:
        DeviceLostError: some candidates could not be measured (the device left); the finished
            ones are cached, so ``--resume`` measures only the rest.
    """
    ids = [
        cid
        for cid, status, runtime in zip(
            sweep["candidate_id"], sweep["status"], sweep["runtime"], strict=True
        )
        if status == "ok"
        and runtime in DEVICE_RUNTIMES
        and built.get(cid) is not None
        and built[cid].artifact is not None
    ]
    results: dict[str, dict[str, Any]] = {}
    payloads, keys = [], {}
    for cid in ids:
        model = Path(built[cid].artifact).read_bytes()  # type: ignore[arg-type]
        keys[cid] = _device_key(model, latency_input, resource, settings, instances)
        entry = cache.get("device_timing", keys[cid])
        if entry is not None:
            results[cid] = entry.meta["result"]
            continue
        payloads.append(MeasurePayload(cid, model, latency_input.numpy(), settings, instances))
    if payloads:
        log.info("timing %d candidate(s) on the device node (%s)", len(payloads), resource)
    lost: dict[str, TaskFailure] = {}
    for index, result in executor.measure(resource, measure_onnx, payloads):
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
            f"executor.device_resource {resource!r}: {len(lost)} of {len(ids)} candidate(s) "
            f"could not be timed on the device ({first.describe()}); the {len(results)} "
            "finished are kept: bring the device back and run again with --resume"
        )
    frame = sweep.copy()
    for column in DEVICE_COLUMNS:
        frame[column] = None
    samples: dict[str, list[float]] = {}
    for cid, result in results.items():
        stats = LatencyStats(**result["stats"])
        node = NodeInfo.from_dict(result["node"])
        mask = frame["candidate_id"] == cid
        frame.loc[mask, "device_latency_p50_ms"] = stats.p50_ms
        frame.loc[mask, "device_latency_p50_ci95_low_ms"] = stats.p50_ci95_low_ms
        frame.loc[mask, "device_latency_p50_ci95_high_ms"] = stats.p50_ci95_high_ms
        frame.loc[mask, "device_latency_p95_ms"] = stats.p95_ms
        frame.loc[mask, "device_latency_mean_ms"] = stats.mean_ms
        frame.loc[mask, "device_latency_std_ms"] = stats.std_ms
        frame.loc[mask, "device_noisy"] = stats.noisy
        frame.loc[mask, "device_measured_on"] = node.describe()
        samples[cid] = list(result["samples_ms"])
    for column in DEVICE_COLUMNS[:-2]:
        frame[column] = pd.to_numeric(frame[column])
    return frame, samples


# ---------------------------------------------------------------------------- the session
@dataclass
class Cluster:
    """The executor of a distributed run, this host's node and the target device's node."""

    executor: Executor
    host: NodeInfo
    resource: str | None
    device: NodeInfo | None

    def close(self) -> None:
        self.executor.close()


def open_cluster(spec: ExecutorSpec) -> Cluster | None:
    """Connect to the executor ``spec`` names; ``None`` for the local executor (nothing to do).

    Raises:
        ExecutorError: Ray cannot connect, or no node carries ``device_resource`` after
            ``device_wait_s`` (checked before any work, so a missing device costs seconds).
    """
    from edge_opt.errors import ExecutorError
    from edge_opt.orchestrate.executors.base import make_executor, this_node

    if not spec.distributed:
        return None
    executor = make_executor(spec)
    host = this_node(getattr(executor, "node_id", "local"))
    device = None
    if spec.device_resource is not None:
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
                "(README: Distributed runs and device nodes), or remove device_resource to "
                "time on this machine only"
            )
        log.info("device node: %s", device.describe())
    return Cluster(executor, host, spec.device_resource, device)


def recommend_on_device(
    sweep: pd.DataFrame, reference_accuracy: float, max_drop: float
) -> Recommendation | None:
    """The recommendation from the device's own measurements, when it measured an accepted
    candidate; ``None`` otherwise (the host's measurements decide, as without a device)."""
    from edge_opt.decide.recommend import Recommendation, recommend_candidate

    if "device_latency_p50_ms" not in sweep.columns:
        return None
    measured = sweep[sweep["device_latency_p50_ms"].notna()]
    if measured.empty or not measured["accepted"].astype(bool).any():
        return None
    rec = recommend_candidate(measured, reference_accuracy, max_drop, "device_latency_p50_ms")
    where = str(measured["device_measured_on"].dropna().iloc[0])
    return Recommendation(
        rec.candidate_id,
        f"measured on the target device {where}, among the {len(measured)} candidate(s) it "
        f"can run ({', '.join(DEVICE_RUNTIMES)}): {rec.reason}",
        rec.baseline_accuracy,
        rec.max_accuracy_drop,
        rec.cost_column,
    )


def cross_device_validation(sweep: pd.DataFrame, tolerance: float = 0.10) -> dict[str, Any]:
    """How the projection onto the target compares with the target's own measurements."""
    projected = next((c for c in sweep.columns if c.startswith("latency_ms_projected_")), None)
    if projected is None or "device_latency_p50_ms" not in sweep.columns:
        return {"available": False, "why": "no device measurements in this run"}
    both = sweep[sweep[projected].notna() & sweep["device_latency_p50_ms"].notna()]
    if both.empty:
        return {"available": False, "why": "no candidate is both projected and device-measured"}
    ratio = both[projected] / both["device_latency_p50_ms"]
    return {
        "available": True,
        "device": str(both["device_measured_on"].iloc[0]),
        "projection": projected,
        "candidates": int(len(both)),
        "tolerance": tolerance,
        "within_tolerance": float(((ratio - 1).abs() <= tolerance).mean()),
        "median_projected_over_measured": float(ratio.median()),
        "rows": [
            {
                "candidate_id": cid,
                "projected_ms": float(p),
                "measured_ms": float(m),
                "projected_over_measured": float(p / m),
            }
            for cid, p, m in zip(
                both["candidate_id"],
                both[projected],
                both["device_latency_p50_ms"],
                strict=True,
            )
        ],
    }
