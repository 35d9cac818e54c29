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
    """edge-opt v1's rule: rejected when the figure exceeds the active budget."""
    return MemoryVerdict(
        accepted=figure_mb is not None and figure_mb <= active_mb,
        violations={b: None if figure_mb is None else figure_mb > b for b in budgets_mb},
    )


HOST_BASIS = "this host (measured)"
DEVICE_BASIS = "the device node (measured)"


def projected_basis(target: str) -> str:
    return f"{target} (projected)"


def latency_figure(frame: pd.DataFrame, target: str | None = None) -> tuple[pd.Series, pd.Series]:
    """The p95 a latency budget is checked on, and whose it is: the device node's where it
    measured the candidate; else, when the target is another machine (``target`` given), the
    target's projected p95 where the projection covers the candidate; else this host's."""
    figure = pd.to_numeric(frame.get(C.latency_p95_ms), errors="coerce")
    basis = pd.Series(HOST_BASIS, index=frame.index, dtype=object).where(figure.notna(), None)
    layers: list[tuple[str, str]] = []
    if target is not None:
        layers.append((f"latency_p95_ms_projected_{target}", projected_basis(target)))
    layers.append((C.device_latency_p95_ms, DEVICE_BASIS))  # a measurement outranks a model
    for column, name in layers:
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        figure = values.where(values.notna(), figure)
        basis = basis.where(values.isna(), name)
    return figure, basis


def apply_latency_budget(
    frame: pd.DataFrame, budget_ms: float | None, target: str | None = None
) -> pd.DataFrame:
    """Reject candidates whose p95 (``latency_figure``) exceeds ``budget_ms``
    (``violates_latency_budget``); a copy. ``None``: no latency budget, the table is returned
    unchanged."""
    if budget_ms is None or frame.empty:
        return frame
    out = frame.copy()
    figure, basis = latency_figure(out, target)
    violates = figure > budget_ms
    out[C.latency_budget_figure] = figure
    out[C.latency_budget_on] = basis
    out[C.violates_latency_budget] = violates.where(figure.notna(), None)
    out[C.accepted] = out[C.accepted].astype(bool) & ~violates.fillna(False).astype(bool)
    return out
