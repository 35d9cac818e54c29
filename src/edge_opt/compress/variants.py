"""Pruned variants: one float model per pruning level, pruned from the baseline and recovered.

Every level, 0 included, is fine-tuned for its ``fine_tune_epochs`` (one number, or one per
level), plain or distilled from the baseline, pruned in one step or several
(``compress.recovery``), so every candidate had the training its level was given (a pruned level
must not "beat" the baseline by training longer). A level's result depends only on the
baseline, the level and the settings: its shuffle order and seed come from (seed, level), never
from what ran before in the process, so a level fine-tuned in a fresh worker, after
``--resume`` or in another order is the same model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.compress.pruning import PruningScope, structured_channel_prune
from edge_opt.compress.recovery import LevelJob, Recovery, RecoveryLog, recover_level
from edge_opt.data.splits import batch_loader, loader_batch_size
from edge_opt.infra.cache import content_key
from edge_opt.infra.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VariantSettings:
    """How one pruning level is made: everything but the baseline and the data."""

    fine_tune_epochs: int | Mapping[float, int]  # one for every level, or {level: epochs}
    learning_rate: float
    seed: int
    input_shape: tuple[int, int, int]
    scope: PruningScope = "uniform"
    channel_multiple: int = 1
    # Fine-tuning's torch threads wherever it runs (a Ray task too): the weights depend on it.
    train_threads: int | None = None
    # How each level recovers (its ``epochs`` is ignored: ``fine_tune_epochs`` gives them).
    recovery: Recovery = field(default_factory=lambda: Recovery(0))

    def epochs_at(self, level: float) -> int:
        epochs = self.fine_tune_epochs
        return int(epochs) if isinstance(epochs, int) else int(epochs.get(level, 0))

    def recovery_at(self, level: float) -> Recovery:
        """How ``level`` recovers (level 0 has nothing to prune in steps: one-shot)."""
        steps = self.recovery.steps if level > 0 else 1
        return replace(self.recovery, epochs=self.epochs_at(level), steps=steps)

    @property
    def trains(self) -> bool:
        """Whether any level is fine-tuned."""
        epochs = self.fine_tune_epochs
        return (epochs if isinstance(epochs, int) else max(epochs.values(), default=0)) > 0


def fine_tune_seed(seed: int, level: float) -> int:
    """The seed of one level's fine-tuning: per level, not per list position (adding a level
    must not change another level's result)."""
    return seed + 1000 + round(level * 100)


def variant_key(
    baseline_sha256: str, level: float, settings: VariantSettings, train_fingerprint: str
) -> str:
    """Cache key of one pruned (and fine-tuned) variant of a baseline."""
    return content_key(
        "variant",
        {
            "baseline_sha256": baseline_sha256,
            "level": level,
            "scope": settings.scope,
            # epochs, teacher (the baseline: its sha256 above), temperature, weight, steps,
            # early stopping: recovered and plain variants never share an entry
            "recovery": settings.recovery_at(level).key(),
            "learning_rate": settings.learning_rate,
            "seed": fine_tune_seed(settings.seed, level),
            "train": train_fingerprint,
            "input_shape": list(settings.input_shape),
            "channel_multiple": settings.channel_multiple,
            "train_threads": settings.train_threads,  # the weights depend on it
            "shuffle": "per-level",  # level_loader: the order depends on (seed, level) only
        },
    )


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
    """The fine-tuning loader of one level: the same data, shuffled by the level's own seed."""
    return batch_loader(
        train_loader.dataset,
        loader_batch_size(train_loader),
        shuffle=True,
        num_workers=train_loader.num_workers,
        generator=torch.Generator().manual_seed(fine_tune_seed(seed, level)),
    )


def prune_variant(
    base_model: nn.Module,
    level: float,
    train_loader: DataLoader | None,
    settings: VariantSettings,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> nn.Module:
    """One level: prune ``base_model`` (a copy) and fine-tune it; no cache (a task's body)."""
    return recover_variant(base_model, level, train_loader, None, settings, progress)[0]


def recover_variant(
    base_model: nn.Module,
    level: float,
    train_loader: DataLoader | None,
    val_loader: DataLoader | None,
    settings: VariantSettings,
    progress: Progress | None = None,
) -> tuple[nn.Module, RecoveryLog]:
    """One level pruned from ``base_model`` (a copy) and recovered as ``settings`` say, with
    the log of its recovery (its validation-loss curve when ``val_loader`` is given)."""
    recovery = settings.recovery_at(level)
    if train_loader is None:
        recovery = replace(recovery, epochs=0)
    if recovery.epochs > 0:
        log.info("fine-tuning pruning level %.2f: %s", level, _how(recovery))
    job = LevelJob(
        base_model,
        level,
        level_loader(train_loader, settings.seed, level) if train_loader is not None else None,
        val_loader,
        settings.input_shape,
        settings.scope,
        settings.channel_multiple,
    )
    return recover_level(
        job,
        recovery,
        settings.learning_rate,
        fine_tune_seed(settings.seed, level),
        settings.train_threads,
        progress,
    )


def _how(recovery: Recovery) -> str:
    how = "distilled from the baseline" if recovery.distillation else "cross-entropy"
    steps = "" if recovery.steps == 1 else f", pruned in {recovery.steps} steps"
    return f"{recovery.epochs} epoch(s), {how}{steps}"
