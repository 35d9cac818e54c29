"""The accuracy/latency frontier as inline SVG: one mark per timed candidate.

Drawn in Python so the page shows it without script and a test can count its marks; the
page's script only adds the hover card. Runtimes are told apart by shape, precisions by
colour, verdicts by fill: frontier points are solid with a dark outline, accepted points the
frontier dominates are pale, rejected points hollow and dashed; the recommended point has a
ring and a label. The horizontal bar through a point is the 95% CI of its p50.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edge_opt.reports.page import esc
from edge_opt.runtimes.registry import RUNTIMES

PRECISION_COLOURS = {
    "fp32": "#1f77b4",
    "fp16": "#ff7f0e",
    "bf16": "#2ca02c",
    "int8": "#d62728",
}
OTHER_COLOUR = "#7f7f7f"
OVERLAP_RADIUS = 5.5  # a marker's radius in SVG units (``marker``'s default)
OTHER_SHAPE = "diamond"  # a runtime no longer registered


def runtime_shape(runtime: str) -> str:
    """The runtime's shape (its registry entry)."""
    return RUNTIMES.get(runtime).svg_shape if runtime in RUNTIMES else OTHER_SHAPE


WIDTH, HEIGHT = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 16, 52


@dataclass(frozen=True)
class Point:
    """One timed candidate on the frontier plot."""

    candidate_id: str
    precision: str
    runtime: str
    p50_ms: float
    p50_low_ms: float | None
    p50_high_ms: float | None
    accuracy: float
    verdict: str  # "frontier", "dominated" or "rejected"
    recommended: bool


@dataclass(frozen=True)
class Scale:
    low: float
    high: float
    start: float
    stop: float
    log: bool

    def __call__(self, value: float) -> float:
        a, b, v = self.low, self.high, value
        if self.log:
            a, b, v = math.log10(a), math.log10(b), math.log10(max(value, self.low))
        frac = 0.5 if b == a else (v - a) / (b - a)
        return self.start + frac * (self.stop - self.start)


def _scale(values: Sequence[float], start: float, stop: float, allow_log: bool) -> Scale:
    low, high = min(values), max(values)
    log = allow_log and low > 0 and high / low > 20
    if log:
        return Scale(low / 1.25, high * 1.25, start, stop, True)
    span = (high - low) or abs(high) * 0.1 or 1.0
    return Scale(low - 0.08 * span, high + 0.08 * span, start, stop, False)


def _ticks(scale: Scale) -> list[float]:
    if scale.log:
        ticks = []
        for exp in range(math.floor(math.log10(scale.low)), math.ceil(math.log10(scale.high)) + 1):
            for m in (1, 2, 5):
                t = m * 10.0**exp
                if scale.low <= t <= scale.high:
                    ticks.append(t)
        return ticks
    raw = (scale.high - scale.low) / 7
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(scale.low / step) * step
    return [first + i * step for i in range(int((scale.high - first) / step) + 1)]


def marker(shape: str, x: float, y: float, r: float = OVERLAP_RADIUS) -> str:
    """The SVG element of one mark (shape by runtime)."""
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}"/>'
    if shape == "square":
        s = r * 0.9
        return f'<rect x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}"/>'
    if shape == "triangle":
        pts = f"{x:.1f},{y - r * 1.2:.1f} {x + r * 1.1:.1f},{y + r * 0.8:.1f} "
        pts += f"{x - r * 1.1:.1f},{y + r * 0.8:.1f}"
        return f'<polygon points="{pts}"/>'
    pts = f"{x:.1f},{y - r * 1.2:.1f} {x + r * 1.2:.1f},{y:.1f} {x:.1f},{y + r * 1.2:.1f} "
    pts += f"{x - r * 1.2:.1f},{y:.1f}"
    return f'<polygon points="{pts}"/>'


def _hidden_under(p: Point, points: Sequence[Point], x: Scale, y: Scale) -> list[Point]:
    """The other points whose marks overlap ``p``'s (within two marker radii): its tooltip
    lists them, since a mark drawn over another hides it from the pointer."""
    cx, cy = x(p.p50_ms), y(p.accuracy)
    return [
        q
        for q in points
        if q is not p and math.hypot(x(q.p50_ms) - cx, y(q.accuracy) - cy) < 2 * OVERLAP_RADIUS
    ]


def _point(p: Point, x: Scale, y: Scale, overlapping: Sequence[Point] = ()) -> str:
    cx, cy = x(p.p50_ms), y(p.accuracy)
    colour = PRECISION_COLOURS.get(p.precision, OTHER_COLOUR)
    parts = []
    if p.p50_low_ms is not None and p.p50_high_ms is not None:
        parts.append(
            f'<line class="ci" x1="{x(p.p50_low_ms):.1f}" x2="{x(p.p50_high_ms):.1f}" '
            f'y1="{cy:.1f}" y2="{cy:.1f}" stroke="{colour}"/>'
        )
    if p.recommended:
        parts.append(f'<circle class="rec-ring" cx="{cx:.1f}" cy="{cy:.1f}" r="11"/>')
    parts.append(marker(runtime_shape(p.runtime), cx, cy))
    title = f"{p.candidate_id}: p50 {p.p50_ms:.4g} ms, accuracy {p.accuracy:.4f}, {p.verdict}"
    for q in overlapping:
        title += f"\nalso here: {q.candidate_id}: p50 {q.p50_ms:.4g} ms, accuracy {q.accuracy:.4f}"
    classes = f"pt {p.verdict}" + (" recommended" if p.recommended else "")
    return (
        f'<g class="{classes}" data-id="{esc(p.candidate_id)}" tabindex="0" '
        f'style="--c:{colour}"><title>{esc(title)}</title>{"".join(parts)}</g>'
    )


def frontier_svg(points: Sequence[Point]) -> str:
    """The plot, or a sentence when nothing was timed."""
    if not points:
        return '<p class="empty">No candidate was timed, so there is nothing to plot.</p>'
    xs = [p.p50_ms for p in points]
    xs += [v for p in points for v in (p.p50_low_ms, p.p50_high_ms) if v is not None]
    x = _scale(xs, LEFT, WIDTH - RIGHT, allow_log=True)
    y = _scale([p.accuracy for p in points], HEIGHT - BOTTOM, TOP, allow_log=False)
    grid = []
    for t in _ticks(x):
        grid.append(
            f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP}" '
            f'y2="{HEIGHT - BOTTOM}"/><text class="tick" x="{x(t):.1f}" '
            f'y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{t:g}</text>'
        )
    for t in _ticks(y):
        grid.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(t):.1f}" '
            f'y2="{y(t):.1f}"/><text class="tick" x="{LEFT - 6}" y="{y(t) + 4:.1f}" '
            f'text-anchor="end">{t:.4g}</text>'
        )
    front = sorted((p for p in points if p.verdict == "frontier"), key=lambda p: p.p50_ms)
    step = []
    for i, p in enumerate(front):
        step.append(f"{x(p.p50_ms):.1f},{y(p.accuracy):.1f}")
        if i + 1 < len(front):
            step.append(f"{x(front[i + 1].p50_ms):.1f},{y(p.accuracy):.1f}")
    line = f'<polyline class="frontier-line" points="{" ".join(step)}"/>' if step else ""
    label = ""
    rec = next((p for p in points if p.recommended), None)
    if rec is not None:
        lx, ly = x(rec.p50_ms), y(rec.accuracy)
        anchor = "end" if lx > WIDTH / 2 else "start"
        dx = -14 if anchor == "end" else 14
        label = (
            f'<text class="rec-label" x="{lx + dx:.1f}" y="{ly - 12:.1f}" '
            f'text-anchor="{anchor}">recommended: {esc(rec.candidate_id)}</text>'
        )
    # Frontier points last so that they are drawn over (and hovered before) the others.
    order = sorted(points, key=lambda p: (p.verdict == "frontier", p.recommended))
    xlabel = "p50 latency per call (ms, measured" + (", log scale)" if x.log else ")")
    return (
        f'<svg id="frontier" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="accuracy versus p50 latency of every timed candidate" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f"{''.join(grid)}"
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" '
        f'y2="{HEIGHT - BOTTOM}"/><line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" '
        f'y2="{HEIGHT - BOTTOM}"/>'
        f'<text class="axis-label" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 12}" '
        f'text-anchor="middle">{xlabel}</text>'
        f'<text class="axis-label" transform="rotate(-90)" x="{-(TOP + HEIGHT - BOTTOM) / 2}" '
        f'y="16" text-anchor="middle">validation accuracy</text>'
        f"{line}{''.join(_point(p, x, y, _hidden_under(p, points, x, y)) for p in order)}"
        f"{label}</svg>"
    )


def legend_html(points: Sequence[Point]) -> str:
    """The key of the plot (only what appears in it)."""
    precisions = sorted({p.precision for p in points})
    runtimes = sorted({p.runtime for p in points})
    items = []
    for precision in precisions:
        colour = PRECISION_COLOURS.get(precision, OTHER_COLOUR)
        items.append(
            f'<span class="key"><svg width="14" height="14"><circle cx="7" cy="7" r="6" '
            f'fill="{colour}"/></svg>{esc(precision)}</span>'
        )
    for runtime in runtimes:
        shape = marker(runtime_shape(runtime), 7, 7, 5)
        items.append(
            f'<span class="key"><svg width="14" height="14" class="shape">{shape}</svg>'
            f"{esc(runtime)}</span>"
        )
    items += [
        '<span class="key"><span class="sw frontier"></span>on the frontier</span>',
        '<span class="key"><span class="sw dominated"></span>accepted, dominated</span>',
        '<span class="key"><span class="sw rejected"></span>rejected (over budget)</span>',
        '<span class="key"><span class="sw ring"></span>recommended</span>',
        '<span class="key">bar: 95% CI of the p50</span>',
    ]
    return f'<div class="legend">{"".join(items)}</div>'
