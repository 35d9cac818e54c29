"""Recovery after pruning: one level pruned (in one step or several) and fine-tuned within its
epoch budget, plain or distilled, stopped early or not, with its loss curve.

With ``steps`` k > 1 the level L is reached as torch-pruning's iterative pruning does it: step i
removes channels until each group keeps ``int(C * (1 - L * i / k))`` of its original C, ranking
them on the weights the previous step's fine-tuning left. The level's budget (``epochs`` passes
over its loader) is one stream of batches split evenly between the steps, so k steps train
exactly as many batches as one-shot pruning; the last step ends on the one-shot channel counts,
so a cached level loads into ``prune_structure``'s skeleton.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from edge_opt.compress.distillation import Distillation
from edge_opt.compress.pruning import PruningScope, StepPruner
from edge_opt.compress.training import RunningStats, Trainer, fixed_threads, mean_loss
from edge_opt.infra.progress import NullProgress, Progress

log = logging.getLogger(__name__)

MIN_IMPROVEMENT = 1e-4  # a validation loss must fall by more than this to count as better


@dataclass(frozen=True)
class Recovery:
    """How a level recovers; everything here is part of its cache key."""

    epochs: int
    distillation: bool = False
    temperature: float = 2.0
    distill_weight: float = 0.5
    steps: int = 1
    early_stop_patience: int | None = None

    def key(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "distillation": self.distillation,
            "temperature": self.temperature if self.distillation else None,
            "distill_weight": self.distill_weight if self.distillation else None,
            "steps": self.steps,
            "early_stop_patience": self.early_stop_patience,
        }


@dataclass(frozen=True)
class CurvePoint:
    """The level after ``epoch`` epochs (0: pruned by the first step, not yet trained)."""

    epoch: int
    steps_done: int
    train_loss: float | None  # the objective's mean over the epoch (distilled: its loss)
    val_loss: float | None  # validation cross-entropy, comparable between plain and distilled


@dataclass(frozen=True)
class RecoveryLog:
    """What a level's recovery did: its settings, the epochs it ran and its curve."""

    level: float
    recovery: Recovery
    epochs_run: int
    best_epoch: int
    stopped_early: bool
    curve: tuple[CurvePoint, ...]

    @property
    def teacher(self) -> str | None:
        return "baseline" if self.recovery.distillation and self.recovery.epochs else None

    def describe(self) -> str:
        """One phrase: 'distilled from the baseline (T=2, weight 0.5), 2 steps, 1 of 1 epoch(s)'."""
        r = self.recovery
        if r.epochs == 0:
            return "not fine-tuned"
        how = (
            f"distilled from the baseline (T={r.temperature:g}, weight {r.distill_weight:g})"
            if r.distillation
            else "plain cross-entropy"
        )
        steps = "one-shot" if r.steps == 1 else f"{r.steps} steps"
        stop = f", stopped early (kept epoch {self.best_epoch})" if self.stopped_early else ""
        return f"{how}, {steps}, {self.epochs_run} of {r.epochs} epoch(s){stop}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "recovery": self.recovery.key(),
            "epochs_run": self.epochs_run,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "teacher": self.teacher,
            "described": self.describe(),
            "curve": [
                {
                    "epoch": p.epoch,
                    "steps_done": p.steps_done,
                    "train_loss": p.train_loss,
                    "val_loss": p.val_loss,
                }
                for p in self.curve
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecoveryLog:
        """Read back (a cache entry's meta, a task's result); raises KeyError/TypeError/
        ValueError on a malformed record, which the caller treats as no record."""
        r = data["recovery"]
        recovery = Recovery(
            int(r["epochs"]),
            bool(r["distillation"]),
            float(r["temperature"] or 2.0),
            float(r["distill_weight"] or 0.5),
            int(r["steps"]),
            None if r["early_stop_patience"] is None else int(r["early_stop_patience"]),
        )
        curve = tuple(
            CurvePoint(
                int(p["epoch"]),
                int(p["steps_done"]),
                _maybe(p["train_loss"]),
                _maybe(p["val_loss"]),
            )
            for p in data["curve"]
        )
        return cls(
            float(data["level"]),
            recovery,
            int(data["epochs_run"]),
            int(data["best_epoch"]),
            bool(data["stopped_early"]),
            curve,
        )


def _maybe(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class LevelJob:
    """One level to recover: the baseline (also the teacher), the level and its data."""

    base_model: nn.Module
    level: float
    loader: DataLoader | None  # None: nothing to fine-tune (epochs must be 0)
    val_loader: DataLoader | None
    input_shape: tuple[int, int, int]
    scope: PruningScope = "uniform"
    channel_multiple: int = 1


def recover_level(
    job: LevelJob,
    recovery: Recovery,
    learning_rate: float,
    seed: int,
    threads: int | None = None,
    progress: Progress | None = None,
) -> tuple[nn.Module, RecoveryLog]:
    """``job.level`` pruned from the baseline (a copy) and fine-tuned as ``recovery`` says.

    Returns:
        The recovered model (eval mode) and the log of its recovery.

    Raises:
        PruningError: the model cannot be pruned at this level.
        TrainingDivergedError: the fine-tuning loss became NaN or infinite.
    """
    with fixed_threads(threads):
        return _Recovering(job, recovery, learning_rate, seed, progress or NullProgress()).run()


@dataclass
class _Recovering:
    job: LevelJob
    recovery: Recovery
    learning_rate: float
    seed: int
    progress: Progress

    def run(self) -> tuple[nn.Module, RecoveryLog]:
        job, recovery = self.job, self.recovery
        steps = recovery.steps if job.level > 0 else 1
        pruner = StepPruner.of(
            job.base_model,
            job.level,
            steps,
            job.input_shape,
            scope=job.scope,
            channel_multiple=job.channel_multiple,
        )
        if job.loader is None and recovery.epochs > 0:
            raise ValueError("fine_tune_epochs > 0 needs a train_loader")
        loader = job.loader
        per_epoch = len(loader) if loader is not None else 0
        budget = recovery.epochs * per_epoch
        # Step i (0-based) prunes before batch boundaries[i] of the level's batch stream.
        boundaries = [budget * i // steps for i in range(steps)]
        torch.manual_seed(self.seed)
        if budget == 0 or loader is None:
            while pruner.steps_done < steps:
                pruner.step()
            return pruner.model.eval(), self._log(0, 0, False, [])
        objective = (
            Distillation.of(job.base_model, recovery.temperature, recovery.distill_weight)
            if recovery.distillation
            else None
        )
        pruner.step()
        model = pruner.model
        curve = [CurvePoint(0, 1, None, self._val_loss(model))]
        self.progress.start(f"fine-tuning p{round(job.level * 100):02d}", budget, "batches")
        trainer = Trainer.of(model, self.learning_rate, "cpu", objective)
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        patience = recovery.early_stop_patience
        done, stopped = 0, False
        for epoch in range(1, recovery.epochs + 1):
            running, batches = RunningStats(), iter(loader)
            for upto in [*(b for b in boundaries[1:] if done <= b < done + per_epoch), None]:
                count = per_epoch - running.batches if upto is None else upto - done
                trainer.train_on(
                    islice(batches, count), running, epoch, recovery.epochs, self.progress
                )
                done += count
                if upto is not None:  # the next pruning step, on the weights trained so far
                    model.load_state_dict(trainer.finished().state_dict())
                    pruner.step()
                    trainer = Trainer.of(model, self.learning_rate, "cpu", objective)
            _drain(batches)
            val = self._val_loss(trainer.model)
            trainer.model.train()
            curve.append(CurvePoint(epoch, pruner.steps_done, running.loss, val))
            log.info(
                "p%02d: epoch %d/%d, loss %.4f%s",
                round(job.level * 100),
                epoch,
                recovery.epochs,
                running.loss,
                "" if val is None else f", validation loss {val:.4f}",
            )
            if patience is None or val is None or pruner.steps_done < steps:
                continue
            if best is None or val < best[0] - MIN_IMPROVEMENT:
                best = (val, epoch, copy.deepcopy(trainer.model.state_dict()))
            elif epoch - best[1] >= patience:
                stopped = True
                break
        self.progress.finish()
        recovered = trainer.finished()
        kept = curve[-1].epoch
        if stopped and best is not None:
            recovered.load_state_dict(best[2])
            kept = best[1]
        return recovered.eval(), self._log(curve[-1].epoch, kept, stopped, curve)

    def _val_loss(self, model: nn.Module) -> float | None:
        if self.job.val_loader is None:
            return None
        was_training = model.training
        value = mean_loss(model, self.job.val_loader)
        model.train(was_training)
        return value

    def _log(
        self, epochs_run: int, best_epoch: int, stopped: bool, curve: list[CurvePoint]
    ) -> RecoveryLog:
        recovery = self.recovery if self.job.level > 0 else replace(self.recovery, steps=1)
        return RecoveryLog(self.job.level, recovery, epochs_run, best_epoch, stopped, tuple(curve))


def _drain(batches: Iterator[Any]) -> None:
    """Nothing is left: every batch of the epoch was trained on (a safety net: the segments
    add up to the epoch, so this finds none)."""
    for _ in batches:
        raise RuntimeError("an epoch's batches were not all trained on")
