"""Where a run writes and how it reports: its context, its stage clock, and its sink.

Computation never writes files: the stages hand what must survive a crash (the resolved config,
the baseline checkpoint, the rows as they complete, the device's samples, the deployable files
and the pruned variants) to the run's ``RunSink``, which writes each atomically into the run's
staging folder. The reports are written from the finished ``RunResult`` (``reports.writer``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from edge_opt.config.loading import dump_config
from edge_opt.config.schema import ExperimentConfig
from edge_opt.deploy.deployables import export_deployables, save_variants
from edge_opt.infra.artifacts import (
    atomic_write_bytes,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
)
from edge_opt.infra.cache import ArtifactCache
from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.measure.process import release_free_heap
from edge_opt.runtimes.base import RuntimeModel

CHECKPOINT = "models/baseline_fp32.pt"
DEVICE_SAMPLES = "device_latency_samples.json"  # every per-call time the device measured
ROWS = "sweep_results.csv"
# The sweep's own phases, timed between stage changes (``timings_s``: sweep_<phase>).
SWEEP_PHASES = ("preparing", "timing", "memory", "device")


@dataclass(frozen=True)
class RunSink:
    """The files of a run in progress, in its staging folder (each written atomically)."""

    out: Path

    def config(self, cfg: ExperimentConfig) -> Path:
        return atomic_write_text(self.out / "config_resolved.yaml", dump_config(cfg))

    def checkpoint(self, weights: bytes) -> Path:
        return atomic_write_bytes(self.out / CHECKPOINT, weights)

    def rows(self, frame: pd.DataFrame) -> Path:
        """``sweep_results.csv``: rewritten each time a candidate is prepared or finished."""
        return atomic_write_csv(self.out / ROWS, frame)

    def device_samples(self, samples: Mapping[str, Sequence[float]]) -> Path:
        return atomic_write_json(self.out / DEVICE_SAMPLES, dict(samples))

    def deployables(
        self, built: Mapping[str, RuntimeModel], ids: Sequence[str], data: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """``models/<id>.<suffix>`` and their sidecars; returns what was written (or why not)."""
        return export_deployables(dict(built), list(ids), self.out / "models", data)

    def variants(self, variants: Mapping[float, nn.Module]) -> None:
        save_variants(dict(variants), self.out / "models" / "variants")


@dataclass(frozen=True)
class RunContext:
    """Where one run writes: its staging folder, scratch space, cache, a stage hook, and where
    the long stages report how far they are (``infra.progress``)."""

    staging: Path
    tmp: Path
    cache: ArtifactCache
    on_stage: Callable[[str], None] = lambda _name: None
    progress: Progress = field(default_factory=NullProgress)

    @property
    def sink(self) -> RunSink:
        return RunSink(self.staging)


@dataclass
class StageClock:
    """Passes stage changes on, and times the sweep's own phases between them. Each change
    first hands the heap's free pages back to the kernel (``release_free_heap``): what the
    stage before freed (decoded data, training and evaluation buffers) is not kept resident
    for the rest of the run."""

    notify: Callable[[str], None]
    phases: dict[str, float] = field(default_factory=dict)
    current: tuple[str, float] | None = None

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.current is not None and self.current[0] in SWEEP_PHASES:
            self.phases[self.current[0]] = now - self.current[1]
        self.current = (name, now)
        release_free_heap()
        self.notify(name)
