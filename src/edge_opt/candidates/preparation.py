"""The *prepare* task of a candidate: prune and fine-tune its level, convert, export, evaluate.

Each task takes one float variant (or one candidate) and returns a typed result; finished work is
stored in the content-keyed cache (``edge_opt.infra.cache``) so that nothing is prepared twice and
``--resume`` picks up where a run stopped. Timing is not a task of this module: it must run with
every candidate side by side (``edge_opt.orchestrate.sweep``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.analysis.hardware import estimate_layerwise_stats
from edge_opt.candidates.plan import SweepPlan, candidate_id
from edge_opt.compress.pruning import PruningScope, structured_channel_prune
from edge_opt.compress.training import train_model
from edge_opt.data.splits import batch_loader, loader_batch_size
from edge_opt.errors import EdgeOptError
from edge_opt.infra.artifacts import atomic_write_csv
from edge_opt.infra.cache import (
    ArtifactCache,
    content_key,
    load_state_dict_bytes,
    sha256_bytes,
    state_dict_bytes,
)
from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.measure.memory import BYTES_PER_MB, peak_activation_bytes
from edge_opt.measure.metrics import AccuracyResult, evaluate_predict
from edge_opt.measure.process import torch_threads
from edge_opt.measure.statistics import LatencyStats
from edge_opt.models.zoo import count_parameters
from edge_opt.runtimes.base import RuntimeModel
from edge_opt.runtimes.build import artifact_name, build_runtime, unsupported_reason

log = logging.getLogger(__name__)

# Preparation (calibration, conversion, evaluation) runs on one torch thread: quantized kernels
# and calibration observers give slightly different results at other thread counts, and a
# candidate must get the same accuracy in this process, in a Ray task and after --resume.
# Evaluation still uses every CPU: batches run side by side, each on one thread.
CONVERSION_THREADS = 1


def _fine_tune_seed(seed: int, level: float) -> int:
    # Per level, not per list position: adding a level must not change another level's result.
    return seed + 1000 + round(level * 100)


def variant_key(
    baseline_sha256: str,
    level: float,
    scope: str,
    fine_tune_epochs: int,
    learning_rate: float,
    seed: int,
    train_fingerprint: str,
    input_shape: tuple[int, int, int],
    channel_multiple: int = 1,
    train_threads: int | None = None,
) -> str:
    """Cache key of one pruned (and fine-tuned) variant of a baseline."""
    return content_key(
        "variant",
        {
            "baseline_sha256": baseline_sha256,
            "level": level,
            "scope": scope,
            "fine_tune_epochs": fine_tune_epochs,
            "learning_rate": learning_rate,
            "seed": _fine_tune_seed(seed, level),
            "train": train_fingerprint,
            "input_shape": list(input_shape),
            "channel_multiple": channel_multiple,
            "train_threads": train_threads,  # the weights depend on it (float sums per thread)
            "shuffle": "per-level",  # level_loader: the order depends on (seed, level) only
        },
    )


def prune_variants(
    base_model: nn.Module,
    pruning_levels: Sequence[float],
    train_loader: DataLoader | None = None,
    fine_tune_epochs: int = 0,
    learning_rate: float = 1e-3,
    device: str | torch.device = "cpu",
    seed: int = 0,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    scope: PruningScope = "uniform",
    *,
    cache: ArtifactCache | None = None,
    train_fingerprint: str = "",
    channel_multiple: int = 1,
    progress: Progress | None = None,
    train_threads: int | None = None,
) -> dict[float, nn.Module]:
    """One pruned and fine-tuned float model per level.

    Every level, 0 included, is fine-tuned for ``fine_tune_epochs``, so every candidate has
    had the same total training (a pruned level must not "beat" the baseline by training
    longer). With ``cache``, finished variants are reused (key: the baseline's weights, the
    level and every training setting) and rebuilt by pruning the baseline again (a
    deterministic structure) and loading the cached state dict (``weights_only``).
    """
    variants: dict[float, nn.Module] = {}
    cache = cache or ArtifactCache(None)
    baseline_sha = sha256_bytes(state_dict_bytes(base_model)) if cache.enabled else ""
    for level in pruning_levels:
        key = variant_key(
            baseline_sha,
            level,
            scope,
            fine_tune_epochs,
            learning_rate,
            seed,
            train_fingerprint,
            input_shape,
            channel_multiple,
            train_threads,
        )
        entry = cache.get("variant", key)
        if entry is not None:
            pruned = prune_structure(base_model, level, input_shape, scope, channel_multiple)
            pruned.load_state_dict(load_state_dict_bytes(entry.read("weights.pt")))
            log.info("pruning level %.2f: reused from the cache", level)
        else:
            if fine_tune_epochs > 0 and train_loader is None:
                raise ValueError("fine_tune_epochs > 0 needs a train_loader")
            pruned = prune_variant(
                base_model,
                level,
                train_loader,
                VariantSettings(
                    fine_tune_epochs,
                    learning_rate,
                    seed,
                    input_shape,
                    scope,
                    channel_multiple,
                    train_threads,
                ),
                device,
                progress,
            )
            cache.put("variant", key, {"level": level}, {"weights.pt": state_dict_bytes(pruned)})
        variants[level] = pruned.eval()
    return variants


@dataclass(frozen=True)
class VariantSettings:
    """How one pruning level is made: everything but the baseline and the data."""

    fine_tune_epochs: int
    learning_rate: float
    seed: int
    input_shape: tuple[int, int, int]
    scope: PruningScope = "uniform"
    channel_multiple: int = 1
    # Fine-tuning's torch threads wherever it runs (a Ray task too): the weights depend on it.
    train_threads: int | None = None


def prune_structure(
    base_model: nn.Module,
    level: float,
    input_shape: tuple[int, int, int],
    scope: PruningScope = "uniform",
    channel_multiple: int = 1,
) -> nn.Module:
    """The pruned structure of ``level`` (deterministic: the same channels every time)."""
    example = torch.zeros(1, *input_shape)
    return structured_channel_prune(
        base_model, level, example, scope=scope, channel_multiple=channel_multiple
    )


def level_loader(train_loader: DataLoader, seed: int, level: float) -> DataLoader:
    """The fine-tuning loader of one level: the same data, shuffled by the level's own seed.

    Each level's shuffle order depends only on (seed, level), never on what ran before in
    the process (the baseline's training, other levels, a cache hit), so a level fine-tuned
    in a fresh worker, after ``--resume`` or in a different order is the same model."""
    return batch_loader(
        train_loader.dataset,
        loader_batch_size(train_loader),
        shuffle=True,
        num_workers=train_loader.num_workers,
        generator=torch.Generator().manual_seed(_fine_tune_seed(seed, level)),
    )


def prune_variant(
    base_model: nn.Module,
    level: float,
    train_loader: DataLoader | None,
    settings: VariantSettings,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> nn.Module:
    """One level: prune ``base_model`` (a copy) and fine-tune it; no cache (a task)."""
    pruned = prune_structure(
        base_model, level, settings.input_shape, settings.scope, settings.channel_multiple
    )
    if settings.fine_tune_epochs <= 0 or train_loader is None:
        return pruned.eval()
    log.info("fine-tuning pruning level %.2f for %d epoch(s)", level, settings.fine_tune_epochs)
    return train_model(
        pruned,
        level_loader(train_loader, settings.seed, level),
        settings.fine_tune_epochs,
        settings.learning_rate,
        device,
        seed=_fine_tune_seed(settings.seed, level),
        progress=progress,
        task=f"fine-tuning p{round(level * 100):02d}",
        threads=settings.train_threads,
    ).eval()


@dataclass
class PreparedCandidate:
    """A candidate after phase 1: built and evaluated, waiting to be timed."""

    common: dict[str, Any]
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
    latency: LatencyStats | None = None
    throughput: LatencyStats | None = None
    rss: tuple[float | None, float | None, str] = (None, None, "not measured")

    @property
    def cid(self) -> str:
        return str(self.common["candidate_id"])

    def cache_meta(self, model_sha256: str) -> dict[str, Any]:
        """What a later run needs to skip evaluation (JSON; predictions in loader order)."""
        if self.accuracy is None:
            raise ValueError("only an evaluated candidate can be cached")
        return {
            "candidate_id": self.cid,
            "model_sha256": model_sha256,
            "correct": self.accuracy.correct,
            "total": self.accuracy.total,
            "predictions": self.accuracy.predictions.tolist(),
            "test_accuracy": self.test_accuracy,
            "size_bytes": self.size_bytes,
            "peak_bytes": self.peak_bytes,
            "ref_agreement": self.ref_agreement,
            "ref_max_abs_error": self.ref_max_abs_error,
            "seconds": self.seconds,
        }

    def restore(self, meta: Mapping[str, Any]) -> None:
        self.accuracy = AccuracyResult(
            int(meta["correct"]),
            int(meta["total"]),
            torch.tensor(meta["predictions"], dtype=torch.int64),
        )
        self.test_accuracy = meta["test_accuracy"]
        self.size_bytes = int(meta["size_bytes"])
        self.peak_bytes = meta["peak_bytes"]
        self.ref_agreement = meta["ref_agreement"]
        self.ref_max_abs_error = meta["ref_max_abs_error"]
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
    cache: ArtifactCache
    # Candidates whose prepare task failed on a cluster node after its retries: id -> why.
    failures: Mapping[str, str] = field(default_factory=dict)
    # Batches evaluated at once (each on one torch thread, so predictions do not depend on it):
    # the CPUs this process may use, i.e. its torch thread count (a Ray task's cpus_per_task).
    eval_workers: int = field(default_factory=lambda: max(1, torch.get_num_threads()))


def evaluate_candidate(
    p: PreparedCandidate, built: RuntimeModel, ctx: PrepareContext, ref: Reference
) -> None:
    workers = ctx.eval_workers if built.concurrent_predict else 1
    p.accuracy = evaluate_predict(built.predict, ctx.val_loader, workers)
    if ctx.test_loader is not None:
        p.test_accuracy = evaluate_predict(built.predict, ctx.test_loader, workers).accuracy
    p.size_bytes = built.size_bytes
    logits = built.predict(ref.batch).float()
    p.ref_agreement = float((logits.argmax(1) == ref.logits.argmax(1)).float().mean())
    p.ref_max_abs_error = float((logits - ref.logits).abs().max())
    example = built.eager.prepare_input(ctx.latency_input)
    p.peak_bytes = peak_activation_bytes(built.eager.model, example).peak_bytes


def prepare_candidate(
    float_model: nn.Module,
    variant_sha256: str,
    level: float,
    precision: str,
    runtime: str,
    ctx: PrepareContext,
    reference: Reference,
    macs_per_sample: int,
) -> PreparedCandidate:
    plan = ctx.plan
    prepared = PreparedCandidate(
        common={
            "candidate_id": candidate_id(level, precision, runtime),
            "pruning_level": level,
            "precision": precision,
            "runtime": runtime,
            "parameter_count": count_parameters(float_model),
            "macs_per_sample": macs_per_sample,
            "fine_tune_epochs": plan.fine_tune_epochs,
        }
    )
    reason = unsupported_reason(runtime, precision)
    if reason is not None:
        prepared.skipped = reason
        return prepared
    if prepared.cid in ctx.failures:
        prepared.error = ctx.failures[prepared.cid]
        return prepared
    start = time.perf_counter()
    key = plan.candidate_key(variant_sha256, precision, runtime)
    entry = ctx.cache.get("candidate", key)
    folder = ctx.workdir / prepared.cid if ctx.workdir is not None else None

    def build(artifact: Path | None) -> RuntimeModel:
        # Calibration observers sum in parallel: a fixed thread count makes the int8 build
        # (and so its accuracy) the same in this process, in a Ray task and after --resume.
        with torch_threads(CONVERSION_THREADS):
            return build_runtime(
                runtime,
                float_model,
                precision,
                ctx.calibration,
                ctx.latency_input,
                plan.harness.threads,
                plan.quantization_backend,
                folder,
                artifact=artifact,
            )

    try:
        name = artifact_name(runtime)  # model.onnx, model.pte: copied into the cache
        cached_file = entry is not None and name is not None and name in entry.meta["files"]
        artifact = entry.path(name) if entry is not None and name and cached_file else None
        built = build(artifact)
        model_sha = sha256_bytes(state_dict_bytes(built.eager.model))
        if entry is not None and entry.meta.get("model_sha256") == model_sha:
            prepared.restore(entry.meta)
        else:
            if entry is not None:
                log.warning(
                    "%s: the rebuilt model differs from its cached one; re-evaluating", prepared.cid
                )
                built = build(None)
            with torch_threads(CONVERSION_THREADS):  # same predictions wherever it runs
                evaluate_candidate(prepared, built, ctx, reference)
            prepared.seconds = time.perf_counter() - start
            copies = {name: built.artifact} if name and built.artifact is not None else None
            ctx.cache.put("candidate", key, prepared.cache_meta(model_sha), copies=copies)
        prepared.built = built
    except (EdgeOptError, RuntimeError) as exc:
        log.warning("%s failed: %s", prepared.cid, exc)
        prepared.built, prepared.error = None, f"{type(exc).__name__}: {exc}"
    prepared.seconds = time.perf_counter() - start
    return prepared


def runtime_mb(p: PreparedCandidate) -> float | None:
    if p.peak_bytes is None:
        return None
    return (p.size_bytes + p.peak_bytes) / BYTES_PER_MB


def pending_row(p: PreparedCandidate, budgets: Sequence[float], active: float) -> dict[str, Any]:
    """Phase-1 row written at once: accuracy and size known, latency still to be timed."""
    status = "skipped" if p.skipped else "failed" if p.error else "timing_pending"
    row = {
        **p.common,
        "status": status,
        "error": p.skipped or p.error,
        "active_budget_mb": active,
    }
    if p.accuracy is not None:
        row.update(
            accuracy=p.accuracy.accuracy,
            test_accuracy=p.test_accuracy,
            model_size_bytes=p.size_bytes,
            memory_mb=p.size_bytes / BYTES_PER_MB,
            peak_activation_bytes=p.peak_bytes,
            runtime_memory_mb=runtime_mb(p),
        )
    return row


def frame_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows to a DataFrame, columns in first-seen order (failed rows lack metric columns)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return pd.DataFrame(rows, columns=list(columns))


def level_reference(model: nn.Module, batch: torch.Tensor) -> Reference:
    with torch.inference_mode():
        return Reference(batch, model.float().eval()(batch).float())


def prepare_all(
    variants: Mapping[float, nn.Module],
    ctx: PrepareContext,
    check_batch: torch.Tensor,
    progress_csv: Path | None,
    progress: Progress | None = None,
) -> list[PreparedCandidate]:
    """Phase 1: every candidate built and evaluated; each row goes to disk as soon as it exists.

    ``progress`` advances once per candidate (task ``preparing``)."""
    plan = ctx.plan
    prepared: list[PreparedCandidate] = []
    by_level: dict[float, tuple[str, Reference, int]] = {}
    candidates = list(plan.candidates())
    progress = progress or NullProgress()
    progress.start("preparing", len(candidates), "candidates")
    for level, precision, runtime in candidates:
        if level not in by_level:
            model = variants[level]
            macs = int(estimate_layerwise_stats(model, 1, ctx.input_shape)["macs"].sum())
            sha = sha256_bytes(state_dict_bytes(model)) if ctx.cache.enabled else ""
            by_level[level] = (sha, level_reference(model, check_batch), macs)
        sha, reference, macs = by_level[level]
        p = prepare_candidate(variants[level], sha, level, precision, runtime, ctx, reference, macs)
        prepared.append(p)
        progress.advance(1, p.cid)
        if p.accuracy is not None:
            log.info(
                "prepared %s: accuracy %.4f, %.1f KiB%s",
                p.cid,
                p.accuracy.accuracy,
                p.size_bytes / 1024,
                " (from the cache)" if p.from_cache else "",
            )
        if progress_csv is not None:
            rows = [
                pending_row(q, plan.memory_budgets_mb, plan.active_memory_budget_mb)
                for q in prepared
            ]
            atomic_write_csv(progress_csv, frame_rows(rows))
    progress.finish()
    return prepared
