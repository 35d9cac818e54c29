"""The typed result of a run. Reporting reads only this (or its JSON), so a report can be
rebuilt without re-running anything."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class HardwareAnalysis:
    """Layer table and bandwidth summary of one candidate at the latency batch."""

    candidate_id: str
    precision: str
    batch_size: int
    latency_ms: float
    layerwise: list[dict[str, Any]]
    summary: dict[str, Any]

    def layerwise_frame(self) -> pd.DataFrame:
        from edge_opt.hardware import LAYER_COLUMNS

        return pd.DataFrame(self.layerwise, columns=LAYER_COLUMNS)


@dataclass(frozen=True)
class RunResult:
    """Everything a run produced, as plain data."""

    config: dict[str, Any]
    environment: dict[str, Any]
    data: dict[str, Any]
    training: list[dict[str, Any]]
    baseline: dict[str, Any]
    sweep: list[dict[str, Any]]
    latency_frontier: list[str]
    energy_frontier: list[str]
    memory_frontier: list[str]
    recommendation: dict[str, Any]
    hardware_baseline: HardwareAnalysis
    hardware_recommended: HardwareAnalysis | None
    precision_tradeoffs: list[dict[str, Any]]
    hardware_candidates: list[HardwareAnalysis] = field(default_factory=list)
    exported_models: list[dict[str, Any]] = field(default_factory=list)
    device_profile: dict[str, Any] = field(default_factory=dict)
    host_profile: dict[str, Any] = field(default_factory=dict)
    hardware_profiles: list[dict[str, Any]] = field(default_factory=list)
    roofline_layers: list[dict[str, Any]] = field(default_factory=list)
    roofline_candidates: list[dict[str, Any]] = field(default_factory=list)
    projection: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""

    def sweep_frame(self) -> pd.DataFrame:
        columns: dict[str, None] = {}
        for row in self.sweep:
            columns.update(dict.fromkeys(row))
        return pd.DataFrame(self.sweep, columns=list(columns))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["hardware_baseline"] = HardwareAnalysis(**data["hardware_baseline"])
        if data.get("hardware_recommended"):
            values["hardware_recommended"] = HardwareAnalysis(**data["hardware_recommended"])
        values["hardware_candidates"] = [
            HardwareAnalysis(**h) for h in data.get("hardware_candidates", [])
        ]
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """Read ``run_result.json`` (or the run directory holding it)."""
        path = Path(path)
        if path.is_dir():
            path = path / "run_result.json"
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
