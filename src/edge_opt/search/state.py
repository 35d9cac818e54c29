"""What a search is given (``SearchInputs``), what it gives back (``SearchOutcome``) and what
its loop accumulates (``SearchState``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from edge_opt.analysis.device_profiles import HardwareProfile
from edge_opt.candidates.plan import SweepPlan
from edge_opt.candidates.preparation import (
    PrepareContext,
)
from edge_opt.candidates.record import CandidateResult, records_frame
from edge_opt.config.sections import SearchConfig
from edge_opt.data.splits import batch_loader, loader_batch_size
from edge_opt.measure.session import (
    Timing,
)
from edge_opt.runtimes.base import RuntimeModel
from edge_opt.search.screen import (
    TimedPoint,
    TrialRecord,
)
from edge_opt.search.space import ChannelGroup


@dataclass(frozen=True)
class SearchInputs:
    """What a search shares with the grid: the plan, the baseline, data and scratch space."""

    plan: SweepPlan
    baseline: nn.Module
    val_loader: DataLoader
    calibration: Sequence[torch.Tensor]
    reference_predictions: torch.Tensor
    input_shape: tuple[int, int, int]
    host: HardwareProfile
    workdir: Path
    test_loader: DataLoader | None = None
    train_loader: DataLoader | None = None
    learning_rate: float = 1e-3
    seed: int = 0
    channel_multiple: int = 1
    train_threads: int | None = None  # fine-tuning's torch threads (the weights depend on it)
    # Fine-tuning distilled from the baseline: (temperature, KL weight); None: cross-entropy.
    distillation: tuple[float, float] | None = None
    # Sees the rows so far after each generation (the run's sweep_results.csv).
    on_rows: Callable[[pd.DataFrame], None] | None = None
    measured_on: str | None = None  # the machine that times the trials, as it describes itself


@dataclass(frozen=True)
class SearchOutcome:
    """Records (one per trial, plus the reference), and each timed candidate's models."""

    records: list[CandidateResult]
    variants: dict[str, nn.Module]  # candidate id -> pruned float model
    built: dict[str, RuntimeModel]
    groups: tuple[ChannelGroup, ...]
    timed_trials: int

    @property
    def frame(self) -> pd.DataFrame:
        return records_frame(self.records)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "timed_trials": self.timed_trials,
            "rows": len(self.records),
        }


@dataclass
class SearchState:
    """What the loop accumulates."""

    inputs: SearchInputs
    settings: SearchConfig
    groups: list[ChannelGroup]
    full: PrepareContext
    subset: PrepareContext
    check_batch: torch.Tensor
    records: list[TrialRecord] = field(default_factory=list)
    timed: list[TimedPoint] = field(default_factory=list)
    variants: dict[tuple[float, ...], nn.Module] = field(default_factory=dict)
    rows: list[CandidateResult] = field(default_factory=list)
    reference_timing: Timing | None = None  # from the first generation (the reference's row)
    built: dict[str, RuntimeModel] = field(default_factory=dict)
    models: dict[str, nn.Module] = field(default_factory=dict)


def subset_loader(loader: DataLoader, count: int | None) -> DataLoader:
    dataset = loader.dataset
    if count is None or count >= len(dataset):  # type: ignore[arg-type]
        return loader
    return batch_loader(Subset(dataset, range(count)), loader_batch_size(loader))
