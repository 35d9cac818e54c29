"""Whether the accuracy tolerance can be trusted: when the reference's accuracy is known only
within a 95% interval wider than ``max_accuracy_drop``, which candidates lie within the
tolerance is decided inside the validation split's sampling noise, and the verdict says so,
with the number of validation images that would narrow the interval to the tolerance."""

from __future__ import annotations

import math

import pandas as pd

from edge_opt.candidates.columns import C
from edge_opt.candidates.plan import REFERENCE_ID

Z95 = 1.959964


def images_for_width(accuracy: float, width: float, z: float = Z95) -> int:
    """Validation images for a 95% interval ``width`` wide around ``accuracy`` (normal
    approximation: width = 2 z sqrt(p (1 - p) / n))."""
    p = min(max(accuracy, 1e-6), 1 - 1e-6)
    return math.ceil((2 * z) ** 2 * p * (1 - p) / width**2)


def tolerance_note(frame: pd.DataFrame, max_accuracy_drop: float) -> str | None:
    """The warning when the reference's 95% interval is wider than the tolerance; None when
    it is not, or when the reference was not measured."""
    if frame.empty or max_accuracy_drop <= 0 or C.accuracy_ci95_low not in frame:
        return None
    rows = frame[(frame[C.candidate_id] == REFERENCE_ID) & (frame[C.status] == "ok")]
    if rows.empty:
        return None
    row = rows.iloc[0]
    low, high = float(row[C.accuracy_ci95_low]), float(row[C.accuracy_ci95_high])
    width = high - low
    if not math.isfinite(width) or width <= max_accuracy_drop:
        return None
    accuracy, images = float(row[C.accuracy]), int(row[C.eval_samples])
    needed = images_for_width(accuracy, max_accuracy_drop)
    return (
        f"the reference's validation accuracy ({REFERENCE_ID}, {accuracy:.4f} on {images:,} "
        f"images) has a 95% interval {low:.4f}-{high:.4f}, {width:.4f} wide: wider than "
        f"max_accuracy_drop {max_accuracy_drop:g}, so which candidates lie within the tolerance "
        "is decided inside the validation split's sampling noise; about "
        f"{needed:,} validation images (val_subset) would narrow the interval to "
        f"{max_accuracy_drop:g}"
    )
