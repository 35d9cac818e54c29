"""Pareto frontiers: which accepted candidates no cheaper candidate beats on accuracy."""

from __future__ import annotations

import math

import pandas as pd

from edge_opt.candidates.columns import C


def pareto_frontier(df: pd.DataFrame, x_col: str, use_ci: bool = False) -> pd.DataFrame:
    """Accuracy-vs-cost frontier over accepted candidates.

    Sorted by cost ascending then accuracy descending, a row is kept when its accuracy beats
    every cheaper row's. With ``use_ci``, accuracy is the 95% lower bound
    (``accuracy_ci95_low``), so a point must beat cheaper ones beyond sampling noise.

    Args:
        df: sweep rows with ``accepted``, ``accuracy`` and ``x_col``.
        x_col: cost column, e.g. ``latency_p50_ms`` or ``energy_proxy_j``.
        use_ci: rank by ``accuracy_ci95_low`` instead of ``accuracy``.

    Returns:
        The frontier rows (same columns as ``df``); empty when nothing is accepted.
    """
    acc_col = C.accuracy_ci95_low if use_ci else "accuracy"
    for col in ("accepted", x_col, acc_col):
        if col not in df.columns and not df.empty:
            raise KeyError(f"pareto_frontier: column {col!r} is missing from the sweep table")
    if df.empty:
        return df.copy()
    mask = df[C.accepted].astype(bool)
    if C.status in df.columns:
        mask &= df[C.status] == "ok"
    ranked = df[mask].sort_values([x_col, acc_col], ascending=[True, False], kind="stable")
    keep, best = [], -math.inf
    for idx, acc in ranked[acc_col].items():
        if acc > best:
            keep.append(idx)
            best = acc
    return ranked.loc[keep].reset_index(drop=True)
