"""The device's budgets: memory (what decides ``accepted``) and latency per frame (on the p95).

A candidate is accepted when its budgeted memory figure (``memory_budget_metric``: the
serialized model, or the model plus its peak live activations) is within the active budget,
which need not be one of the listed budgets (each listed budget gets its ``violates_<b>mb``
column), and, when ``latency_budget_ms`` is set, its p95 is within it. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from edge_opt.candidates.columns import C
from edge_opt.candidates.plan import BUDGET_METRIC_NAMES
from edge_opt.candidates.record import BYTES_PER_MB

# The column each memory_budget_metric constrains.
BUDGET_METRICS = dict(zip(BUDGET_METRIC_NAMES, (C.memory_mb, C.runtime_memory_mb), strict=True))


def budget_figure_mb(
    size_bytes: int, peak_activation_bytes: int | None, metric: str
) -> float | None:
    """The figure the memory budgets are checked on: ``model`` (serialized size) or
    ``runtime`` (size + peak live activations; None when the activations are unknown)."""
    if metric == "model":
        return size_bytes / BYTES_PER_MB
    if peak_activation_bytes is None:
        return None
    return (size_bytes + peak_activation_bytes) / BYTES_PER_MB


@dataclass(frozen=True)
class MemoryVerdict:
    """Accepted under the active budget, and the verdict of every listed budget (None:
    the figure is unknown)."""

    accepted: bool
    violations: Mapping[float, bool | None]


def judge_memory(
    figure_mb: float | None, budgets_mb: Sequence[float], active_mb: float
) -> MemoryVerdict:
    """The seed's rule: rejected when the figure exceeds the active budget."""
    return MemoryVerdict(
        accepted=figure_mb is not None and figure_mb <= active_mb,
        violations={b: None if figure_mb is None else figure_mb > b for b in budgets_mb},
    )


def latency_figure(frame: pd.DataFrame) -> pd.Series:
    """The p95 a latency budget is checked on: the device's own where it measured the
    candidate, else this host's."""
    host = pd.to_numeric(frame.get(C.latency_p95_ms), errors="coerce")
    if C.device_latency_p95_ms not in frame.columns:
        return host
    device = pd.to_numeric(frame[C.device_latency_p95_ms], errors="coerce")
    return device.where(device.notna(), host)


def apply_latency_budget(frame: pd.DataFrame, budget_ms: float | None) -> pd.DataFrame:
    """Reject candidates whose p95 exceeds ``budget_ms`` (``violates_latency_budget``); a copy.
    ``None``: no latency budget, the table is returned unchanged."""
    if budget_ms is None or frame.empty:
        return frame
    out = frame.copy()
    figure = latency_figure(out)
    violates = figure > budget_ms
    out[C.latency_budget_figure] = figure
    out[C.violates_latency_budget] = violates.where(figure.notna(), None)
    out[C.accepted] = out[C.accepted].astype(bool) & ~violates.fillna(False).astype(bool)
    return out
