"""Dominance and hypervolume over objectives that are all minimised.

A point dominates another when it is no worse in every objective and better in one. The
hypervolume of a set is the area (2 objectives) its points dominate up to a reference point:
the larger, the better the frontier; points beyond the reference add nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

Point = Sequence[float]


def dominates(a: Point, b: Point) -> bool:
    """True when ``a`` is no worse than ``b`` everywhere and better somewhere (minimising)."""
    if len(a) != len(b):
        raise ValueError(f"points of different lengths: {len(a)} and {len(b)}")
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def non_dominated(points: Sequence[Point]) -> list[int]:
    """Indices of the points no other point dominates (duplicates are all kept)."""
    return [
        i
        for i, p in enumerate(points)
        if not any(dominates(q, p) for j, q in enumerate(points) if j != i)
    ]


def hypervolume_2d(points: Sequence[Point], reference: Point) -> float:
    """Area dominated by ``points`` (both coordinates minimised) and bounded by ``reference``.

    Example:
        >>> hypervolume_2d([(1.0, 3.0), (2.0, 1.0)], (4.0, 4.0))
        7.0
    """
    if len(reference) != 2:
        raise ValueError(f"reference: {list(reference)} must have 2 coordinates")
    inside = sorted(
        (float(x), float(y))
        for x, y in (tuple(p) for p in points)
        if x < reference[0] and y < reference[1]
    )
    area, best_y = 0.0, float(reference[1])
    for x, y in inside:  # x ascending: each point adds the strip below the best y so far
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area
