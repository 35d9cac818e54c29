"""Pruned variants: one float model per pruning level, pruned from the baseline and fine-tuned.

Every level, 0 included, is fine-tuned for ``fine_tune_epochs``, so every candidate had the
same total training (a pruned level must not "beat" the baseline by training longer). A
level's result depends only on the baseline, the level and the training settings: its shuffle
order and seed come from (seed, level), never from what ran before in the process, so a level
fine-tuned in a fresh worker, after ``--resume`` or in another order is the same model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.compress.pruning import PruningScope, structured_channel_prune
from edge_opt.compress.training import train_model
from edge_opt.data.splits import batch_loader, loader_batch_size
from edge_opt.infra.cache import content_key
from edge_opt.infra.progress import Progress

log = logging.getLogger(__name__)


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
            "fine_tune_epochs": settings.fine_tune_epochs,
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
        seed=fine_tune_seed(settings.seed, level),
        progress=progress,
        task=f"fine-tuning p{round(level * 100):02d}",
        threads=settings.train_threads,
    ).eval()
