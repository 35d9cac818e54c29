"""Preparing a sweep's variants and candidates through the run's executor, with the cache.

The driver looks in the content-keyed cache first (what ``--resume`` reuses), hands every
missing piece to the executor as tasks (``local``: in this process, one after the other;
``ray``: across a cluster), stores each returned result in the cache, and rebuilds a candidate
whose result came from another process. Tasks return their results: the cache is a cache, not
a mailbox. A task that fails on a node after its retries leaves a ``failed`` row (a candidate)
or is done again here (a pruning level); nothing finished is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.candidates.plan import SweepPlan, candidate_id
from edge_opt.candidates.preparation import (
    PrepareContext,
    PreparedCandidate,
    level_macs,
    new_candidate,
    restore_candidate,
)
from edge_opt.candidates.tasks import (
    CandidateOutcome,
    CandidateShared,
    VariantShared,
    candidate_task,
    variant_task,
)
from edge_opt.compress.recovery import RecoveryLog
from edge_opt.compress.variants import (
    VariantSettings,
    prune_structure,
    recover_variant,
    variant_key,
)
from edge_opt.data.splits import loader_batch_size
from edge_opt.infra.cache import (
    ArtifactCache,
    load_state_dict_bytes,
    sha256_bytes,
    state_dict_bytes,
)
from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.orchestrate.executors.base import Executor, TaskFailure
from edge_opt.orchestrate.executors.local import LocalExecutor
from edge_opt.runtimes.build import artifact_name

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class PreparedVariants:
    """Each level's recovered float model, and how it was recovered (its log and curve)."""

    models: dict[float, nn.Module]
    recovery: dict[float, RecoveryLog]


def prepare_variants(
    base_model: nn.Module,
    levels: Sequence[float],
    train_loader: DataLoader | None,
    settings: VariantSettings,
    executor: Executor,
    cache: ArtifactCache,
    train_fingerprint: str = "",
    progress: Progress | None = None,
) -> dict[float, nn.Module]:
    """One pruned and fine-tuned float model per level: from the cache, or made by tasks."""
    return recover_variants(
        base_model,
        levels,
        (train_loader, None),
        settings,
        executor,
        cache,
        train_fingerprint,
        progress,
    ).models


def recover_variants(
    base_model: nn.Module,
    levels: Sequence[float],
    loaders: tuple[DataLoader | None, DataLoader | None],
    settings: VariantSettings,
    executor: Executor,
    cache: ArtifactCache,
    train_fingerprint: str = "",
    progress: Progress | None = None,
) -> PreparedVariants:
    """Every level pruned and recovered (``loaders``: training, and validation for the curve and
    early stopping): from the cache, or made by tasks, with its recovery log."""
    train_loader, val_loader = loaders
    base_sha = sha256_bytes(state_dict_bytes(base_model)) if cache.enabled else ""
    keys = {lv: variant_key(base_sha, lv, settings, train_fingerprint) for lv in levels}
    variants: dict[float, nn.Module] = {}
    logs: dict[float, RecoveryLog] = {}
    for level in levels:
        entry = cache.get("variant", keys[level], state_dicts=("weights.pt",))
        if entry is not None:
            state = entry.state_dicts["weights.pt"]
            variants[level] = _loaded_variant(base_model, level, settings, state)
            logs[level] = _read_log(entry.meta.get("recovery"), level, settings)
            log.info("pruning level %.2f: reused from the cache", level)
    missing = [level for level in levels if level not in variants]
    if missing and settings.trains and train_loader is None:
        raise ValueError("fine_tune_epochs > 0 needs a train_loader")
    # Pruning alone takes milliseconds: without fine-tuning there is nothing to hand out.
    runner = executor if settings.trains else LocalExecutor()
    in_process = not runner.distributed
    shared = VariantShared(
        base_model,
        train_loader.dataset if train_loader is not None else None,
        loader_batch_size(train_loader) if train_loader is not None else 1,
        settings,
        keep_live=in_process,
        progress=progress if in_process else None,
        val=val_loader.dataset if val_loader is not None else None,
    )
    # Tasks run here show their own per-batch progress; tasks elsewhere count per level.
    counted = progress if (progress is not None and not in_process and missing) else None
    if counted is not None:
        counted.start(f"fine-tuning ({runner.kind} tasks)", len(missing), "levels")
    for index, outcome in runner.prepare(variant_task, shared, missing):
        level = missing[index]
        if counted is not None:
            counted.advance(1, f"p{round(level * 100):02d}")
        if isinstance(outcome, TaskFailure):
            log.warning("pruning level %.2f: %s; it is made here", level, outcome.describe())
            model, made = recover_variant(base_model, level, train_loader, val_loader, settings)
            weights, record = state_dict_bytes(model), made.to_dict()
        else:
            weights, record = outcome.weights, outcome.recovery
            source = f"the weights pruning level {level:.2f}'s task returned"
            model = outcome.live or _loaded_variant(
                base_model, level, settings, load_state_dict_bytes(weights, source)
            )
            if not in_process:
                log.info("pruning level %.2f: fine-tuned by a task", level)
        logs[level] = _read_log(record, level, settings)
        meta = {"level": level, "recovery": logs[level].to_dict()}
        cache.put("variant", keys[level], meta, {"weights.pt": weights})
        variants[level] = model.eval()
    if counted is not None:
        counted.finish()
    return PreparedVariants(
        {level: variants[level] for level in levels}, {level: logs[level] for level in levels}
    )


def _read_log(record: Any, level: float, settings: VariantSettings) -> RecoveryLog:
    """A level's recovery log read back (a cache entry, a task's result), checked against what
    this run asked for; one that does not parse or fit says only what was asked (no curve)."""
    wanted = settings.recovery_at(level)
    try:
        found = RecoveryLog.from_dict(record)
        if found.level == level and found.recovery == wanted:
            return found
    except (KeyError, TypeError, ValueError, AttributeError):
        pass
    log.warning("pruning level %.2f: its recovery record is missing or malformed", level)
    return RecoveryLog(level, wanted, wanted.epochs, wanted.epochs, False, ())


def _loaded_variant(
    base_model: nn.Module, level: float, settings: VariantSettings, state: Mapping[str, Any]
) -> nn.Module:
    """A level rebuilt: the baseline pruned again (a deterministic structure), its state dict
    (read with ``weights_only``) loaded."""
    pruned = prune_structure(
        base_model, level, settings.input_shape, settings.scope, settings.channel_multiple
    )
    pruned.load_state_dict(state)
    return pruned.eval()


# --------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class CandidateInputs:
    """The data every candidate of a sweep is prepared with."""

    val_loader: DataLoader
    test_loader: DataLoader | None
    calibration: Sequence[torch.Tensor]
    latency_input: torch.Tensor
    check_batch: torch.Tensor  # the fixed batch each candidate's logits are compared on
    input_shape: tuple[int, int, int]
    workdir: Path | None  # where this process keeps exported files


def _groups(items: Sequence[tuple[float, str, str]]) -> list[tuple[float, str, tuple[str, ...]]]:
    """Candidates grouped by (level, runtime), in plan order."""
    grouped: dict[tuple[float, str], list[str]] = {}
    for level, precision, runtime in items:
        grouped.setdefault((level, runtime), []).append(precision)
    return [(level, runtime, tuple(ps)) for (level, runtime), ps in grouped.items()]


def prepare_candidates(
    plan: SweepPlan,
    variants: Mapping[float, nn.Module],
    inputs: CandidateInputs,
    executor: Executor,
    cache: ArtifactCache,
    progress: Progress | None = None,
    on_prepared: Callable[[list[PreparedCandidate]], None] | None = None,
) -> list[PreparedCandidate]:
    """Every candidate of ``plan`` built and evaluated, in plan order; ``on_prepared`` sees the
    list each time a candidate is added (the progress CSV)."""
    run = _Preparation(plan, variants, inputs, cache, progress or NullProgress(), on_prepared)
    run.progress.start("preparing", len(run.order), "candidates")
    missing = []
    for p in run.order:
        restored = p if p.skipped is not None else run.from_cache(p)
        if restored is not None:
            run.finish(restored)
        else:
            missing.append(p)
    run.dispatch(missing, executor)
    run.progress.finish()
    return [run.done[p.cid] for p in run.order]


@dataclass
class _Preparation:
    """One sweep's candidates being prepared: what is done, in plan order."""

    plan: SweepPlan
    variants: Mapping[float, nn.Module]
    inputs: CandidateInputs
    cache: ArtifactCache
    progress: Progress
    on_prepared: Callable[[list[PreparedCandidate]], None] | None
    done: dict[str, PreparedCandidate] = field(default_factory=dict)

    def __post_init__(self) -> None:
        inputs = self.inputs
        self.macs = {lv: level_macs(m, inputs.input_shape) for lv, m in self.variants.items()}
        self.shas = {
            lv: sha256_bytes(state_dict_bytes(m)) if self.cache.enabled else ""
            for lv, m in self.variants.items()
        }
        self.ctx = PrepareContext(
            self.plan,
            inputs.val_loader,
            inputs.test_loader,
            list(inputs.calibration),
            inputs.latency_input,
            inputs.input_shape,
            inputs.workdir,
        )
        self.order = [
            new_candidate(self.variants[lv], lv, pr, rt, self.plan, self.macs[lv])
            for lv, pr, rt in self.plan.candidates()
        ]

    def finish(self, p: PreparedCandidate) -> None:
        self.done[p.cid] = p
        self.progress.advance(1, p.cid)
        _log_prepared(p)
        if self.on_prepared is not None:
            self.on_prepared([self.done[q.cid] for q in self.order if q.cid in self.done])

    def from_cache(self, p: PreparedCandidate) -> PreparedCandidate | None:
        key = self.plan.candidate_key(self.shas[p.pruning_level], p.precision, p.runtime)
        entry = self.cache.get("candidate", key)
        if entry is None:
            return None
        name = artifact_name(p.runtime)  # model.onnx, model.pte
        artifact = entry.path(name) if name is not None and name in entry.meta["files"] else None
        model = self.variants[p.pruning_level]
        return restore_candidate(model, p, self.ctx, entry.meta, artifact)

    def dispatch(self, missing: Sequence[PreparedCandidate], executor: Executor) -> None:
        """The missing candidates as tasks. On a cluster, one task per level and runtime (the
        int8 ONNX Runtime candidate quantizes its fp32 sibling's export); here one candidate
        at a time, in plan order (this process keeps its exports, so the sibling's is reused
        all the same)."""
        items = [(p.pruning_level, p.precision, p.runtime) for p in missing]
        local = [(lv, rt, (pr,)) for lv, pr, rt in items]
        groups = _groups(items) if executor.distributed else local
        if groups and executor.distributed:
            log.info(
                "preparing %d candidate(s) as %d %s tasks (one per level and runtime)",
                len(missing),
                len(groups),
                executor.kind,
            )
        by_id = {p.cid: p for p in missing}
        shared = self.shared(keep_live=not executor.distributed)
        for index, outcome in executor.prepare(candidate_task, shared, groups):
            level, runtime, precisions = groups[index]
            if isinstance(outcome, TaskFailure):
                for precision in precisions:
                    p = by_id[candidate_id(level, precision, runtime)]
                    p.error = outcome.describe()
                    self.finish(p)
                continue
            for result in outcome:
                p = by_id[result.candidate_id]
                key = self.plan.candidate_key(self.shas[level], p.precision, runtime)
                model = self.variants[level]
                self.finish(_received(model, p, result, self.ctx, self.cache, key))

    def shared(self, keep_live: bool) -> CandidateShared:
        inputs = self.inputs
        return CandidateShared(
            self.plan,
            dict(self.variants),
            self.macs,
            inputs.val_loader.dataset,
            None if inputs.test_loader is None else inputs.test_loader.dataset,
            loader_batch_size(inputs.val_loader),
            list(inputs.calibration),
            inputs.latency_input,
            inputs.check_batch,
            inputs.input_shape,
            inputs.workdir,
            keep_live=keep_live,
        )


def _received(
    float_model: nn.Module,
    p: PreparedCandidate,
    result: CandidateOutcome,
    ctx: PrepareContext,
    cache: ArtifactCache,
    key: str,
) -> PreparedCandidate:
    """A task's result stored in the cache, and the candidate it describes (the live one when
    the task ran here; rebuilt from the stored entry otherwise)."""
    if result.error is not None or result.meta is None:
        p.error = result.error or "the task returned no result"
        return p
    live = result.live
    name = artifact_name(p.runtime)
    copies = None
    if live is not None and live.built is not None and live.built.artifact is not None and name:
        copies = {name: live.built.artifact}
    entry = cache.put("candidate", key, dict(result.meta), dict(result.files), copies)
    if live is not None:
        return live
    artifact = None
    if name is not None and name in result.files:
        artifact = entry.path(name) if entry is not None else _spill(ctx, p, name, result)
    restored = restore_candidate(float_model, p, ctx, result.meta, artifact)
    if restored is None:
        p.error = "the candidate a task built could not be rebuilt here"
        return p
    restored.seconds = float(result.meta.get("seconds", restored.seconds))
    restored.from_cache = False  # prepared by a task of this run
    log.info("prepared %s in a task", p.cid)
    return restored


def _spill(ctx: PrepareContext, p: PreparedCandidate, name: str, result: CandidateOutcome) -> Path:
    """A task's exported file written where this process keeps exports (no cache)."""
    folder = (ctx.workdir or Path(".")) / p.cid / "received"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(result.files[name])
    return path


def _log_prepared(p: PreparedCandidate) -> None:
    if p.accuracy is not None:
        log.info(
            "prepared %s: accuracy %.4f, %.1f KiB%s",
            p.cid,
            p.accuracy.accuracy,
            p.size_bytes / 1024,
            " (from the cache)" if p.from_cache else "",
        )
