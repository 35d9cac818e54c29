"""Accuracy-vs-cost scatter plots a person can read.

Precisions are told apart by colour and runtimes by marker; rejected candidates are hollow;
the recommended point is a star. Only frontier points (and the recommended one) get a text
label, placed where it overlaps no other label and no marker; a label that fits nowhere is
listed in the legend instead. Rows that were not timed are counted in the title by status
(skipped is not failed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C
from edge_opt.runtimes.registry import RUNTIMES

PRECISION_COLOURS = {
    "fp32": "tab:blue",
    "fp16": "tab:orange",
    "bf16": "tab:green",
    "int8": "tab:red",
}
OTHER_MARKER = "D"  # a runtime no longer registered (a run made with a plugin since removed)


def runtime_marker(runtime: str) -> str:
    """The runtime's marker (its registry entry)."""
    return RUNTIMES.get(runtime).marker if runtime in RUNTIMES else OTHER_MARKER


# Offsets (points) tried in turn for a label, nearest first, then further out.
_OFFSETS = [
    (dx * k, dy * k)
    for k in (1, 2, 3)
    for dx, dy in ((6, 6), (6, -12), (-6, 6), (-6, -12), (0, 12), (0, -18))
]


def constant_power(sweep: pd.DataFrame) -> float | None:
    """The one ``power_watts`` of every timed row, or None when it differs (or is absent)."""
    if sweep.empty or C.power_watts not in sweep.columns:
        return None
    ok = sweep[sweep[C.status] == "ok"] if C.status in sweep.columns else sweep
    values = ok[C.power_watts].dropna().unique()
    return float(values[0]) if len(values) == 1 else None


def untimed_note(sweep: pd.DataFrame) -> str:
    """'2 skipped, 1 failed: not plotted', or '' when every row was timed."""
    if sweep.empty or C.status not in sweep.columns:
        return ""
    counts = sweep.loc[sweep[C.status] != "ok", "status"].value_counts()
    if counts.empty:
        return ""
    return ", ".join(f"{n} {status}" for status, n in counts.items()) + ": not plotted"


def _overlaps(box: Any, boxes: Sequence[Any]) -> bool:
    return any(box.overlaps(other) for other in boxes)


def place_labels(ax: Any, points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Annotate each (text, x, y) where its box overlaps no placed label and no marker.

    Returns:
        The texts that fit nowhere inside the axes (the caller lists them in the legend).
    """
    fig = ax.figure
    if getattr(fig, "canvas", None) is None or not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    markers = []
    for collection in ax.collections:
        sizes = collection.get_sizes()  # marker areas in points^2
        radius = (float(sizes.max()) ** 0.5 / 2 if len(sizes) else 3.0) * fig.dpi / 72
        for offset in collection.get_offsets():
            x, y = ax.transData.transform(offset)
            markers.append(_box(x - radius, y - radius, x + radius, y + radius))
    placed: list[Any] = []
    unplaced = []
    for text, x, y in points:
        for dx, dy in _OFFSETS:
            label = ax.annotate(
                text,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=7,
                ha="left" if dx >= 0 else "right",
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
            )
            box = label.get_window_extent(renderer)
            inside = (
                box.x0 >= axes_box.x0
                and box.x1 <= axes_box.x1
                and box.y0 >= axes_box.y0
                and box.y1 <= axes_box.y1
            )
            if inside and not _overlaps(box, placed) and not _overlaps(box, markers):
                placed.append(box)
                label.set_gid("frontier-label")
                break
            label.remove()
        else:
            unplaced.append(text)
    return unplaced


def _box(x0: float, y0: float, x1: float, y1: float) -> Any:
    from matplotlib.transforms import Bbox

    return Bbox([[x0, y0], [x1, y1]])


def scatter(
    sweep: pd.DataFrame,
    frontier: pd.DataFrame,
    x_col: str,
    xlabel: str,
    title: str,
    budget_mb: float | None = None,
    recommended: str | None = None,
) -> Any:
    """Accuracy vs ``x_col`` for every timed candidate; returns a matplotlib Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.5, 5.5))
    ax = fig.subplots()
    ok = sweep[sweep[C.status] == "ok"] if not sweep.empty else sweep
    if C.runtime not in ok.columns:  # results of an edge-opt without runtimes: all eager
        ok = ok.assign(runtime="eager")
    _draw_points(ax, ok, x_col)
    handles: list[Any] = []
    if not frontier.empty:
        handles.append(_draw_frontier(ax, frontier, x_col))
    rec = ok[ok[C.candidate_id] == recommended] if recommended else ok.iloc[0:0]
    if not rec.empty:
        handles.append(_draw_recommended(ax, rec, x_col, str(recommended)))
    if budget_mb is not None:
        handles.append(_draw_budget(ax, ok[x_col] if not ok.empty else None, budget_mb))
    handles += _key_handles(ok)
    if not ok.empty and ok[x_col].min() > 0 and ok[x_col].max() / ok[x_col].min() > 20:
        ax.set_xscale("log")
    note = untimed_note(sweep)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation accuracy")
    ax.set_title(title + (f" ({note})" if note else ""))
    ax.grid(True, alpha=0.3)
    legend = ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    unplaced = place_labels(ax, _frontier_labels(frontier, rec, x_col, recommended))
    if unplaced:
        handles.append(_line(None, "unlabelled frontier: " + ", ".join(unplaced)))
        legend.remove()
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _draw_budget(ax: Any, xs: pd.Series | None, budget_mb: float) -> Any:
    """The active memory budget as a dashed line, or, when it lies far beyond every point
    (a 64 MB budget for 0.1 MB models), only a legend entry: a line there would squash every
    point against the left edge."""
    far = xs is not None and float(xs.max()) > 0 and budget_mb > 5 * float(xs.max())
    if far:
        return _line(None, f"active budget {budget_mb:g} MB: off the axis, above every point")
    ax.axvline(budget_mb, color="gray", linestyle="--", linewidth=1)
    return _line("gray", f"active budget {budget_mb:g} MB", linestyle="--")


def _line(colour: str | None, text: str, **style: Any) -> Any:
    from matplotlib.lines import Line2D

    if colour is None:
        return Line2D([], [], linestyle="none", label=text)
    return Line2D([], [], color=colour, label=text, **style)


def _draw_points(ax: Any, ok: pd.DataFrame, x_col: str) -> None:
    """Every timed candidate: colour by precision, shape by runtime, filled when accepted."""
    for (precision, runtime), group in ok.groupby([C.precision, C.runtime], sort=True):
        colour = PRECISION_COLOURS.get(str(precision), "tab:gray")
        accepted = group[C.accepted].astype(bool)
        for subset, filled in ((group[accepted], True), (group[~accepted], False)):
            if not subset.empty:
                ax.scatter(
                    subset[x_col],
                    subset[C.accuracy],
                    marker=runtime_marker(str(runtime)),
                    s=42,
                    facecolors=colour if filled else "none",
                    edgecolors=colour,
                    linewidths=1.4,
                    zorder=3,
                )


def _draw_frontier(ax: Any, frontier: pd.DataFrame, x_col: str) -> Any:
    ax.plot(
        frontier[x_col],
        frontier[C.accuracy],
        color="black",
        linewidth=1.1,
        drawstyle="steps-post",
        zorder=2,
    )
    return _line("black", "Pareto frontier (accepted only)")


def _draw_recommended(ax: Any, rec: pd.DataFrame, x_col: str, recommended: str) -> Any:
    ax.scatter(
        rec[x_col],
        rec[C.accuracy],
        marker="*",
        s=320,
        facecolors="none",
        edgecolors="purple",
        linewidths=1.6,
        zorder=4,
    )
    style = {"marker": "*", "markerfacecolor": "none", "markersize": 13, "linestyle": "none"}
    return _line("purple", f"recommended: {recommended}", **style)


def _key_handles(ok: pd.DataFrame) -> list[Any]:
    """The legend's key: precisions by colour, runtimes by shape, accepted vs rejected."""
    handles = []
    for precision in sorted(ok[C.precision].unique()) if not ok.empty else []:
        colour = PRECISION_COLOURS.get(str(precision), "tab:gray")
        handles.append(_line(colour, str(precision), marker="o", linestyle="none"))
    for runtime in sorted(ok[C.runtime].unique()) if not ok.empty else []:
        marker = runtime_marker(str(runtime))
        handles.append(_line("dimgray", str(runtime), marker=marker, linestyle="none"))
    dot = {"marker": "o", "linestyle": "none"}
    return [
        *handles,
        _line("dimgray", "accepted (filled)", **dot),
        _line("dimgray", "rejected (hollow)", markerfacecolor="none", **dot),
    ]


def _frontier_labels(
    frontier: pd.DataFrame, rec: pd.DataFrame, x_col: str, recommended: str | None
) -> list[tuple[str, float, float]]:
    """Points that get their id written beside them: the frontier, and the pick."""
    labels = [
        (str(r[C.candidate_id]), float(r[x_col]), float(r[C.accuracy]))
        for _, r in frontier.iterrows()
    ]
    if not rec.empty and recommended not in {t for t, _, _ in labels}:
        labels.insert(
            0, (str(recommended), float(rec[x_col].iloc[0]), float(rec[C.accuracy].iloc[0]))
        )
    return labels
