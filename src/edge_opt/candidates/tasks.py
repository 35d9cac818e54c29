"""The prepare tasks an executor runs: fine-tune one pruning level; build the candidates of one
level and runtime. Each returns its result (the executor hands it back to the driver).

A task's result is plain data that crosses a process boundary (state-dict bytes, the cache
entry's JSON and exported files). When the executor runs tasks in the driver's own process
(``shared.keep_live``), the result also carries the live object (the fine-tuned model, the
built candidate), so nothing is rebuilt; on a cluster the driver rebuilds it from the data.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from edge_opt.candidates.plan import SweepPlan
from edge_opt.candidates.preparation import (
    PrepareContext,
    PreparedCandidate,
    build_candidate,
    level_reference,
    model_sha256,
    new_candidate,
)
from edge_opt.compress.variants import VariantSettings, recover_variant
from edge_opt.data.splits import batch_loader
from edge_opt.infra.cache import state_dict_bytes
from edge_opt.infra.progress import Progress
from edge_opt.runtimes.build import artifact_name

# ----------------------------------------------------------------------------- variants


@dataclass(frozen=True)
class VariantShared:
    """What every variant task of a run shares (put once in a cluster's object store)."""

    base_model: nn.Module  # also the distillation teacher
    train: Dataset | None  # None: nothing to fine-tune (fine_tune_epochs 0)
    batch_size: int
    settings: VariantSettings
    keep_live: bool = False  # the task runs in the driver's process: return the model too
    progress: Progress | None = None  # in the driver's process only: per-batch progress
    val: Dataset | None = None  # the recovery curve's validation loss (and early stopping)


@dataclass(frozen=True)
class VariantOutcome:
    """One fine-tuned level: its weights (``torch.save`` bytes), its recovery log (JSON-ready),
    and in-process the model."""

    level: float
    weights: bytes
    live: nn.Module | None = None
    recovery: dict[str, Any] | None = None


def variant_task(shared: VariantShared, level: float) -> VariantOutcome:
    """Prune one level and recover it (fine-tuning, plain or distilled, in one step or more)."""
    loader = None
    if shared.train is not None:
        loader = batch_loader(shared.train, shared.batch_size, shuffle=True)
    val = None if shared.val is None else batch_loader(shared.val, shared.batch_size)
    model, log = recover_variant(
        shared.base_model, level, loader, val, shared.settings, progress=shared.progress
    )
    live = model if shared.keep_live else None
    return VariantOutcome(level, state_dict_bytes(model), live, log.to_dict())


# --------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class CandidateShared:
    """What every candidate task of a sweep shares."""

    plan: SweepPlan
    variants: Mapping[float, nn.Module]
    macs: Mapping[float, int]
    val: Dataset
    test: Dataset | None
    batch_size: int
    calibration: list[torch.Tensor]
    latency_input: torch.Tensor
    check_batch: torch.Tensor
    input_shape: tuple[int, int, int]
    workdir: Path | None = None  # in-process: where exports stay (the timing loads them)
    keep_live: bool = False


@dataclass(frozen=True)
class CandidateOutcome:
    """One built candidate as data: its cache entry's JSON and files, or its error; in-process
    also the live candidate."""

    candidate_id: str
    meta: Mapping[str, Any] | None
    files: Mapping[str, bytes]
    error: str | None = None
    live: PreparedCandidate | None = None


def _outcome(p: PreparedCandidate, keep_live: bool) -> CandidateOutcome:
    if p.error is not None or p.built is None:
        return CandidateOutcome(p.cid, None, {}, p.error or "not built")
    name = artifact_name(p.runtime)  # model.onnx, model.pte: kept with the entry
    files: dict[str, bytes] = {}
    if name is not None and p.built.artifact is not None and not keep_live:
        files[name] = p.built.artifact.read_bytes()
    meta = p.cache_meta(model_sha256(p.built))
    return CandidateOutcome(p.cid, meta, files, None, p if keep_live else None)


def candidate_task(
    shared: CandidateShared, group: tuple[float, str, tuple[str, ...]]
) -> list[CandidateOutcome]:
    """Convert, export and evaluate the candidates of one pruning level and runtime, one
    precision after the other (an int8 ONNX Runtime candidate quantizes the file its fp32
    sibling exported); results in ``group``'s order."""
    level, runtime, precisions = group
    model = shared.variants[level]
    # Quantized kernels dispatch on this process-wide setting: the driver's.
    torch.backends.quantized.engine = shared.plan.quantization_backend
    with tempfile.TemporaryDirectory(prefix="edge-opt-task-") as tmp:
        ctx = PrepareContext(
            shared.plan,
            batch_loader(shared.val, shared.batch_size),
            None if shared.test is None else batch_loader(shared.test, shared.batch_size),
            list(shared.calibration),
            shared.latency_input,
            shared.input_shape,
            shared.workdir if shared.keep_live else Path(tmp),
        )
        reference = level_reference(model, shared.check_batch)
        outcomes = []
        for precision in precisions:
            p = new_candidate(model, level, precision, runtime, shared.plan, shared.macs[level])
            p = build_candidate(model, p, ctx, reference)
            outcomes.append(_outcome(p, shared.keep_live))
        return outcomes
