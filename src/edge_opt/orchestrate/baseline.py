"""The run's first two stages: its inputs (model, data, loaders, calibration) and its trained
baseline (from the cache when the very same training finished before)."""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_opt.compress.training import EpochStats, train_model
from edge_opt.config.schema import ExperimentConfig
from edge_opt.data.formats import load_dataset
from edge_opt.data.splits import (
    DataSplits,
    Loaders,
    calibration_inputs,
    make_loaders,
    split_dataset,
)
from edge_opt.infra.cache import (
    ArtifactCache,
    CacheKey,
    content_key,
    sha256_bytes,
    state_dict_bytes,
)
from edge_opt.infra.environment import sha256_file
from edge_opt.infra.progress import Progress
from edge_opt.measure.metrics import AccuracyResult, evaluate_accuracy
from edge_opt.models.zoo import BuiltModel, build_configured_model
from edge_opt.orchestrate.preflight import check_data_fits_model

log = logging.getLogger(__name__)

TORCH_DEVICE = "cpu"  # every measurement runs on this machine's CPU; `device` is the target


@dataclass(frozen=True)
class RunInputs:
    """The configured model (untrained unless a checkpoint), the data and its loaders."""

    built: BuiltModel
    splits: DataSplits
    loaders: Loaders
    calibration: list[torch.Tensor]
    fingerprint: str  # sha256 of every split's tensors ("" without a cache)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.splits.input_shape

    def train_fingerprint(self, cfg: ExperimentConfig) -> str:
        """What a fine-tuned variant was trained on: the data, its batches and shuffle seed."""
        return self.fingerprint + f"|bs={cfg.batch_size}|dl={cfg.effective_dataloader_seed}"

    def data_info(self) -> dict[str, Any]:
        """What a deployable's sidecar says about the data."""
        splits = self.splits
        return {
            "input_shape": list(splits.input_shape),
            "num_classes": splits.num_classes,
            "normalisation": {"mean": splits.mean, "std": splits.std},
            **splits.describe(),
        }


def data_fingerprint(splits: DataSplits) -> str:
    """sha256 of every split's normalised images and labels: what a cached result was computed
    on. The bytes hashed are those of the float32 images, a few thousand at a time (the same
    digest as hashing whole normalised splits, so earlier cache entries still match, without a
    copy of each split)."""
    digest = hashlib.sha256()
    for split in (splits.train, splits.val, splits.test):
        split.update_digest(digest)
    return digest.hexdigest()


def load_inputs(cfg: ExperimentConfig, fingerprinted: bool) -> RunInputs:
    """Stage ``data``: build the model, read and split the data (seeded), make the loaders."""
    torch.manual_seed(cfg.seed)
    built = build_configured_model(cfg)
    raw = load_dataset(cfg.dataset, built.input_shape, cfg.data_dir)
    splits = split_dataset(raw, cfg.train_subset, cfg.val_subset, cfg.test_subset, cfg.seed)
    loaders = make_loaders(splits, cfg.batch_size, cfg.effective_dataloader_seed, cfg.num_workers)
    calibration = calibration_inputs(splits, cfg.batch_size, cfg.calibration_batches, cfg.seed)
    log.info("data: %s from %s; sizes %s", splits.name, splits.source, splits.sizes())
    for warning in splits.warnings:
        log.warning("data: %s", warning)
    check_data_fits_model(splits, built)
    fingerprint = data_fingerprint(splits) if fingerprinted else ""
    return RunInputs(built, splits, loaders, calibration, fingerprint)


@dataclass(frozen=True)
class Baseline:
    """The trained baseline and its accuracy (before any candidate's fine-tuning)."""

    model: nn.Module
    history: list[dict[str, Any]]
    val: AccuracyResult
    test_accuracy: float

    @property
    def val_accuracy(self) -> float:
        return self.val.accuracy


def _training_key(cfg: ExperimentConfig, built: BuiltModel, fingerprint: str) -> CacheKey:
    checkpoint = built.checkpoint
    return content_key(
        "baseline",
        {
            "model": cfg.model.model_dump(mode="json"),
            "checkpoint_sha256": sha256_file(Path(checkpoint)) if checkpoint else None,
            "initial_sha256": sha256_bytes(state_dict_bytes(built.model)),
            "data": fingerprint,
            "batch_size": cfg.batch_size,
            "dataloader_seed": cfg.effective_dataloader_seed,
            "epochs": cfg.epochs,
            "learning_rate": cfg.learning_rate,
            "seed": cfg.seed,
            "train_threads": cfg.train_threads,
        },
    )


def train_baseline(
    cfg: ExperimentConfig,
    inputs: RunInputs,
    cache: ArtifactCache,
    on_epoch: Callable[[EpochStats], None] | None = None,
    progress: Progress | None = None,
) -> Baseline:
    """Stage ``training``: train the baseline, or reuse the cached result of the very same
    training; then its validation and test accuracy."""
    built, loaders = inputs.built, inputs.loaders
    key = _training_key(cfg, built, inputs.fingerprint)
    entry = cache.get("baseline", key, state_dicts=("weights.pt",))
    model = copy.deepcopy(built.model)
    if entry is not None:
        model.load_state_dict(entry.state_dicts["weights.pt"])
        log.info("baseline: reused from the cache (the same training finished before)")
        trained, history = model.eval(), list(entry.meta["history"])
    else:
        trained, history = _train(cfg, inputs, model, on_epoch, progress)
        weights = state_dict_bytes(trained)
        cache.put("baseline", key, {"history": history}, {"weights.pt": weights})
    val = evaluate_accuracy(trained, loaders.val)
    test = evaluate_accuracy(trained, loaders.test).accuracy
    log.info(
        "trained baseline (before any fine-tuning): validation accuracy %.4f, test accuracy "
        "%.4f; the recommendation's reference is p00-fp32-eager's, fine-tuned like every "
        "candidate",
        val.accuracy,
        test,
    )
    return Baseline(trained, history, val, test)


def _train(
    cfg: ExperimentConfig,
    inputs: RunInputs,
    model: nn.Module,
    on_epoch: Callable[[EpochStats], None] | None,
    progress: Progress | None,
) -> tuple[nn.Module, list[dict[str, Any]]]:
    built, loaders = inputs.built, inputs.loaders
    log.info(
        "training %s for %d epoch(s) on %d images%s",
        built.label,
        cfg.epochs,
        len(loaders.train.dataset),
        f" from checkpoint {built.checkpoint}" if built.checkpoint else "",
    )
    history: list[dict[str, Any]] = []

    def record_epoch(stats: EpochStats) -> None:
        history.append(asdict(stats))
        if on_epoch is not None:
            on_epoch(stats)

    trained = train_model(
        model,
        loaders.train,
        cfg.epochs,
        cfg.learning_rate,
        TORCH_DEVICE,
        seed=cfg.seed,
        on_epoch=record_epoch,
        val_loader=loaders.val,
        progress=progress,
        threads=cfg.train_threads,
    )
    return trained, history


def training_note(cfg: ExperimentConfig, history: list[dict[str, Any]]) -> dict[str, Any]:
    """How much training every candidate had, and whether the baseline had converged."""
    losses = [h["val_loss"] for h in history if h.get("val_loss") is not None]
    falling = len(losses) >= 2 and losses[-1] < losses[-2]
    budget = cfg.fine_tune_epochs
    per_level = {str(lv): n for lv, n in budget.items()} if isinstance(budget, dict) else None
    return {
        "baseline_epochs": cfg.epochs,
        "fine_tune_epochs": budget if per_level is None else per_level,
        "total_epochs_per_candidate": cfg.epochs + budget if per_level is None else None,
        "recovery": cfg.recovery.describe(),
        "val_loss_per_epoch": losses,
        "val_loss_still_falling": falling if len(losses) >= 2 else None,
    }
