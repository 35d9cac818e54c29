"""Preparing a candidate: convert its level's float model, export it, evaluate it.

``build_candidate`` is a prepare task's body (no cache: the driver keeps one): it builds the
candidate for its runtime and precision and evaluates it (accuracy on validation and test,
size, agreement with the level's fp32 logits, peak live activations). ``restore_candidate``
rebuilds one from a cache entry (``--resume``): the conversion again, or the cached export
loaded, and the evaluation from the entry once the rebuilt model proves to be the cached one.
Timing is not done here: it must run with every candidate side by side (``measure.session``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.candidates.columns import C
from edge_opt.candidates.plan import SweepPlan, candidate_id
from edge_opt.candidates.record import BYTES_PER_MB
from edge_opt.errors import EdgeOptError
from edge_opt.infra.cache import sha256_bytes, state_dict_bytes
from edge_opt.measure.memory import peak_activation_bytes
from edge_opt.measure.metrics import AccuracyResult, evaluate_predict
from edge_opt.measure.process import release_free_heap, torch_threads
from edge_opt.models.layers import estimate_layerwise_stats
from edge_opt.models.zoo import count_parameters
from edge_opt.runtimes.base import RuntimeModel
from edge_opt.runtimes.build import build_runtime
from edge_opt.runtimes.registry import unsupported_reason

log = logging.getLogger(__name__)

# Preparation (calibration, conversion, evaluation) runs on one torch thread: quantized kernels
# and calibration observers give slightly different results at other thread counts, and a
# candidate must get the same accuracy in this process, in a Ray task and after --resume.
# Evaluation still uses every CPU: batches run side by side, each on one thread.
CONVERSION_THREADS = 1


@dataclass
class PreparedCandidate:
    """A candidate built and evaluated, waiting to be timed (or failed, or skipped)."""

    cid: str
    pruning_level: float
    precision: str
    runtime: str
    parameter_count: int | None
    macs_per_sample: int | None
    fine_tune_epochs: int
    built: RuntimeModel | None = None
    accuracy: AccuracyResult | None = None
    test_accuracy: float | None = None
    size_bytes: int = 0
    peak_bytes: int | None = None
    ref_agreement: float | None = None
    ref_max_abs_error: float | None = None
    error: str | None = None
    skipped: str | None = None
    seconds: float = 0.0
    from_cache: bool = False

    @property
    def status(self) -> str:
        return "skipped" if self.skipped else "failed" if self.error else "ok"

    def cache_meta(self, model_sha256: str) -> dict[str, Any]:
        """What a later run needs to skip evaluation (JSON; predictions in loader order)."""
        if self.accuracy is None:
            raise ValueError("only an evaluated candidate can be cached")
        return {
            C.candidate_id: self.cid,
            "model_sha256": model_sha256,
            "correct": self.accuracy.correct,
            "total": self.accuracy.total,
            "predictions": self.accuracy.predictions.tolist(),
            C.test_accuracy: self.test_accuracy,
            "size_bytes": self.size_bytes,
            "peak_bytes": self.peak_bytes,
            "ref_agreement": self.ref_agreement,
            C.ref_max_abs_error: self.ref_max_abs_error,
            "seconds": self.seconds,
        }

    def restore(self, meta: Mapping[str, Any]) -> None:
        self.accuracy = AccuracyResult(
            int(meta["correct"]),
            int(meta["total"]),
            torch.tensor(meta["predictions"], dtype=torch.int64),
        )
        self.test_accuracy = meta[C.test_accuracy]
        self.size_bytes = int(meta["size_bytes"])
        self.peak_bytes = meta["peak_bytes"]
        self.ref_agreement = meta["ref_agreement"]
        self.ref_max_abs_error = meta[C.ref_max_abs_error]
        self.from_cache = True


@dataclass(frozen=True)
class Reference:
    """The fixed batch every candidate's outputs are checked on, and the fp32 eager logits of
    the same pruning level on it."""

    batch: torch.Tensor
    logits: torch.Tensor


@dataclass
class PrepareContext:
    """What every candidate of one sweep shares while it is prepared."""

    plan: SweepPlan
    val_loader: DataLoader
    test_loader: DataLoader | None
    calibration: list[torch.Tensor]
    latency_input: torch.Tensor
    input_shape: tuple[int, int, int]
    workdir: Path | None
    # Batches evaluated at once (each on one torch thread, so predictions do not depend on it):
    # the CPUs this process may use, i.e. its torch thread count (a Ray task's cpus_per_task).
    eval_workers: int = field(default_factory=lambda: max(1, torch.get_num_threads()))


def level_reference(model: nn.Module, batch: torch.Tensor) -> Reference:
    with torch.inference_mode():
        return Reference(batch, model.float().eval()(batch).float())


def level_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """MACs per image of a level's float model."""
    return int(estimate_layerwise_stats(model, 1, input_shape)["macs"].sum())


def new_candidate(
    float_model: nn.Module, level: float, precision: str, runtime: str, plan: SweepPlan, macs: int
) -> PreparedCandidate:
    """A candidate not built yet: its identity and its architecture's size and compute."""
    return PreparedCandidate(
        candidate_id(level, precision, runtime),
        level,
        precision,
        runtime,
        count_parameters(float_model),
        macs,
        plan.epochs_at(level),
        skipped=unsupported_reason(runtime, precision),
    )


def evaluate_candidate(
    p: PreparedCandidate, built: RuntimeModel, ctx: PrepareContext, ref: Reference
) -> None:
    """Accuracy (validation, test), size, agreement with the level's fp32 logits, activations."""
    workers = ctx.eval_workers if built.concurrent_predict else 1
    with torch_threads(CONVERSION_THREADS):  # same predictions wherever it runs
        p.accuracy = evaluate_predict(built.predict, ctx.val_loader, workers)
        if ctx.test_loader is not None:
            p.test_accuracy = evaluate_predict(built.predict, ctx.test_loader, workers).accuracy
        p.size_bytes = built.size_bytes
        logits = built.predict(ref.batch).float()
        p.ref_agreement = float((logits.argmax(1) == ref.logits.argmax(1)).float().mean())
        p.ref_max_abs_error = float((logits - ref.logits).abs().max())
        example = built.eager.prepare_input(ctx.latency_input)
        p.peak_bytes = peak_activation_bytes(built.eager.model, example).peak_bytes


def _build(
    p: PreparedCandidate, float_model: nn.Module, ctx: PrepareContext, artifact: Path | None
) -> RuntimeModel:
    # Calibration observers sum in parallel: a fixed thread count makes the int8 build (and so
    # its accuracy) the same in this process, in a Ray task and after --resume.
    with torch_threads(CONVERSION_THREADS):
        return build_runtime(
            p.runtime,
            float_model,
            p.precision,
            ctx.calibration,
            ctx.latency_input,
            ctx.plan.harness.threads,
            ctx.plan.quantization_backend,
            ctx.workdir / p.cid if ctx.workdir is not None else None,
            artifact=artifact,
        )


def build_candidate(
    float_model: nn.Module,
    p: PreparedCandidate,
    ctx: PrepareContext,
    reference: Reference,
) -> PreparedCandidate:
    """Build and evaluate ``p`` (a task's body); a failure is kept as ``p.error``."""
    if p.skipped is not None:
        return p
    start = time.perf_counter()
    try:
        built = _build(p, float_model, ctx, None)
        evaluate_candidate(p, built, ctx, reference)
        built.release_buffers()  # evaluation's batch-size buffers: the timing builds its own
        p.built = built
    except (EdgeOptError, RuntimeError) as exc:
        log.warning("%s failed: %s", p.cid, exc)
        p.built, p.error = None, f"{type(exc).__name__}: {exc}"
    p.seconds = time.perf_counter() - start
    release_free_heap()  # what its conversion, export and evaluation freed, before the next
    return p


def model_sha256(built: RuntimeModel) -> str:
    """What a cache entry of a candidate proves it holds: its eager model's weights."""
    return sha256_bytes(state_dict_bytes(built.eager.model))


def restore_candidate(
    float_model: nn.Module,
    p: PreparedCandidate,
    ctx: PrepareContext,
    meta: Mapping[str, Any],
    artifact: Path | None,
) -> PreparedCandidate | None:
    """``p`` rebuilt from a cache entry (the conversion again, or ``artifact`` loaded) with its
    evaluation from ``meta``; None when the rebuilt model is not the cached one (the caller
    prepares it anew)."""
    start = time.perf_counter()
    try:
        built = _build(p, float_model, ctx, artifact)
    except (EdgeOptError, RuntimeError) as exc:
        log.warning("%s: its cached build could not be loaded (%s); preparing it again", p.cid, exc)
        return None
    if meta.get("model_sha256") != model_sha256(built):
        log.warning("%s: the rebuilt model differs from its cached one; re-evaluating", p.cid)
        return None
    p.built = built
    p.restore(meta)
    p.seconds = time.perf_counter() - start
    return p


def pending_row(p: PreparedCandidate, plan: SweepPlan) -> dict[str, Any]:
    """The row written as soon as a candidate is prepared: accuracy and size known, latency
    still to be timed (``timing_pending``)."""
    row: dict[str, Any] = {
        C.candidate_id: p.cid,
        C.pruning_level: p.pruning_level,
        C.precision: p.precision,
        C.runtime: p.runtime,
        C.parameter_count: p.parameter_count,
        C.macs_per_sample: p.macs_per_sample,
        C.fine_tune_epochs: p.fine_tune_epochs,
        C.status: "timing_pending" if p.status == "ok" else p.status,
        C.error: p.skipped or p.error,
        C.active_budget_mb: plan.active_memory_budget_mb,
    }
    if p.accuracy is not None:
        row.update(
            {
                C.accuracy: p.accuracy.accuracy,
                C.test_accuracy: p.test_accuracy,
                C.model_size_bytes: p.size_bytes,
                C.memory_mb: p.size_bytes / BYTES_PER_MB,
                C.peak_activation_bytes: p.peak_bytes,
                C.runtime_memory_mb: runtime_mb(p),
            }
        )
    return row


def runtime_mb(p: PreparedCandidate) -> float | None:
    """Model size plus peak live activations (MiB); None when the activations are unknown."""
    if p.peak_bytes is None:
        return None
    return (p.size_bytes + p.peak_bytes) / BYTES_PER_MB
