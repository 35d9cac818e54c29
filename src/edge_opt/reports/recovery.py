"""How each pruning level recovered: a table (markdown and HTML), ``recovery_curves.csv``, and
a small inline SVG of each level's validation loss per fine-tuning epoch.

Epoch 0 is the level just pruned (by its first step), before any fine-tuning; the validation
loss is cross-entropy on the validation split whatever the training objective, so plain and
distilled curves compare on one axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C
from edge_opt.reports.page import Column, esc, table
from edge_opt.reports.result import RunResult

LEVEL_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
WIDTH, HEIGHT = 520, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 96, 12, 40

CURVE_COLUMNS = ("level", "epoch", "steps_done", "train_loss", "val_loss", "recovery")


def level_name(level: float) -> str:
    return f"p{round(level * 100):02d}"


def curves_frame(result: RunResult) -> pd.DataFrame:
    """``recovery_curves.csv``: one row per level and epoch (0: just pruned)."""
    rows = [
        {
            "level": record["level"],
            "epoch": point["epoch"],
            "steps_done": point["steps_done"],
            "train_loss": point["train_loss"],
            "val_loss": point["val_loss"],
            "recovery": record.get("described", ""),
        }
        for record in result.recovery
        for point in record.get("curve", [])
    ]
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def recovery_rows(result: RunResult) -> list[dict[str, Any]]:
    """One row per level: how it recovered, its loss before and after, and the accuracy of its
    fp32 eager candidate (validation, test)."""
    fp32 = {
        row[C.pruning_level]: row
        for row in result.sweep
        if row.get(C.precision) == "fp32" and row.get(C.runtime) == "eager"
    }
    rows = []
    for record in result.recovery:
        curve = record.get("curve", [])
        losses = [p["val_loss"] for p in curve if p.get("val_loss") is not None]
        candidate = fp32.get(record["level"], {})
        recovery = record.get("recovery", {})
        rows.append(
            {
                "level": level_name(float(record["level"])),
                "how": record.get("described", ""),
                "steps": recovery.get("steps"),
                "epochs": f"{record.get('epochs_run')} of {recovery.get('epochs')}",
                "teacher": record.get("teacher") or "none",
                "loss_pruned": losses[0] if losses else None,
                "loss_recovered": _kept_loss(record),
                "accuracy": candidate.get(C.accuracy),
                "test_accuracy": candidate.get(C.test_accuracy),
            }
        )
    return rows


def _kept_loss(record: Mapping[str, Any]) -> float | None:
    kept = record.get("best_epoch")
    for point in record.get("curve", []):
        if point["epoch"] == kept:
            return point.get("val_loss")
    return None


RECOVERY_COLUMNS = [
    Column("level", "level"),
    Column("how", "recovery"),
    Column("epochs", "epochs run"),
    Column("teacher", "teacher"),
    Column("loss_pruned", "val loss pruned", ".4f", "validation cross-entropy just pruned"),
    Column("loss_recovered", "val loss recovered", ".4f", "after the epochs kept"),
    Column("accuracy", "fp32 accuracy", ".4f", "the level's fp32 eager candidate, validation"),
    Column("test_accuracy", "fp32 test", ".4f", "the same on the test split"),
]


def recovery_markdown(result: RunResult) -> list[str]:
    """The report's *Recovery after pruning* section (empty without records)."""
    rows = recovery_rows(result)
    if not rows:
        return []
    lines = [
        "## Recovery after pruning",
        "",
        "Each level is pruned from the trained baseline, then fine-tuned; validation loss is "
        "cross-entropy on the validation split just after pruning and after the epochs kept "
        "(every epoch's in `recovery_curves.csv`; the curves are drawn in report.html).",
        "",
        "| " + " | ".join(c.label for c in RECOVERY_COLUMNS) + " |",
        "|" + "---|" * len(RECOVERY_COLUMNS),
    ]
    for row in rows:
        cells = [_cell(row.get(c.key), c.fmt) for c in RECOVERY_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _cell(value: Any, fmt: str | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt) if fmt else str(value)


def recovery_html(result: RunResult) -> str:
    """The HTML section: the curves (inline SVG) and the per-level table."""
    rows = recovery_rows(result)
    if not rows:
        return ""
    return (
        '<section id="recovery"><h2>Recovery after pruning</h2><p class="note">Validation '
        "cross-entropy of each level just after pruning (epoch 0) and after each fine-tuning "
        "epoch; a dot marks the epoch kept. Plain and distilled fine-tuning compare on this "
        "axis (the training loss differs).</p>"
        f"{curves_svg(result.recovery)}"
        f"{table('recovery-table', RECOVERY_COLUMNS, rows, filterable=False)}</section>"
    )


def curves_svg(records: Sequence[Mapping[str, Any]]) -> str:
    """Each level's validation loss per epoch, one coloured line per level."""
    series = [
        (
            level_name(float(r["level"])),
            [(p["epoch"], p["val_loss"]) for p in r.get("curve", []) if p.get("val_loss")],
            r.get("best_epoch"),
        )
        for r in records
    ]
    series = [s for s in series if s[1]]
    if not series:
        return ""
    xs = [x for _, pts, _ in series for x, _ in pts]
    ys = [y for _, pts, _ in series for _, y in pts]
    x_max = max(max(xs), 1)
    y_low, y_high = min(ys), max(ys)
    pad = (y_high - y_low) * 0.08 or abs(y_high) * 0.05 or 0.1
    y_low, y_high = y_low - pad, y_high + pad

    def sx(x: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * x / x_max

    def sy(y: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (y_high - y) / (y_high - y_low)

    parts = [_axes(x_max, y_low, y_high, sx, sy)]
    for index, (name, points, kept) in enumerate(series):
        colour = LEVEL_COLOURS[index % len(LEVEL_COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline class="recovery-curve" data-level="{esc(name)}" points="{path}" '
            f'fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for x, y in points:
            radius = 4 if x == kept else 2.5
            parts.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius}" fill="{colour}">'
                f"<title>{esc(name)}, epoch {x}: validation loss {y:.4f}</title></circle>"
            )
        last_x, last_y = points[-1]
        parts.append(
            f'<text x="{sx(last_x) + 8:.1f}" y="{sy(last_y) + 4:.1f}" font-size="12" '
            f'fill="{colour}">{esc(name)}</text>'
        )
    return (
        f'<svg class="recovery-plot" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="validation loss per fine-tuning epoch">'
        + "".join(parts)
        + "</svg>"
    )


def _axes(x_max: int, y_low: float, y_high: float, sx: Any, sy: Any) -> str:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#555"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#555"/>',
        f'<text x="{(LEFT + right) / 2:.0f}" y="{HEIGHT - 6}" font-size="12" '
        'text-anchor="middle">fine-tuning epoch (0: just pruned)</text>',
        f'<text x="14" y="{(TOP + bottom) / 2:.0f}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {(TOP + bottom) / 2:.0f})">validation loss</text>',
    ]
    step = max(1, math.ceil(x_max / 10))
    for x in range(0, x_max + 1, step):
        parts.append(
            f'<text x="{sx(x):.1f}" y="{bottom + 16}" font-size="11" '
            f'text-anchor="middle">{x}</text>'
        )
    for i in range(5):
        y = y_low + (y_high - y_low) * i / 4
        parts.append(
            f'<text x="{LEFT - 6}" y="{sy(y) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{y:.3f}</text>'
        )
    return "".join(parts)
