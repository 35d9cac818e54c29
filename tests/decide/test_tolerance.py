"""The tolerance warning: a reference accuracy known less precisely than max_accuracy_drop."""

from __future__ import annotations

import pandas as pd
import pytest

from edge_opt.candidates.columns import C
from edge_opt.decide.tolerance import images_for_width, tolerance_note
from edge_opt.measure.metrics import wilson_interval


def _frame(correct: int, images: int) -> pd.DataFrame:
    low, high = wilson_interval(correct, images)
    row = {
        C.candidate_id: "p00-fp32-eager",
        C.status: "ok",
        C.accuracy: correct / images,
        C.accuracy_ci95_low: low,
        C.accuracy_ci95_high: high,
        C.eval_samples: images,
    }
    return pd.DataFrame([row])


def test_a_tolerance_finer_than_the_interval_is_warned_with_the_images_needed() -> None:
    note = tolerance_note(_frame(4400, 5000), 0.01)  # 0.88 on 5,000 images: +-0.009
    assert note is not None
    assert "0.8800 on 5,000 images" in note
    needed = images_for_width(0.88, 0.01)
    assert f"about {needed:,} validation images" in note
    # With that many images the interval is the tolerance wide (within rounding).
    low, high = wilson_interval(round(0.88 * needed), needed)
    assert high - low == pytest.approx(0.01, rel=0.01)


def test_no_warning_when_the_interval_fits_or_the_reference_is_missing() -> None:
    assert tolerance_note(_frame(4400, 5000), 0.05) is None
    assert tolerance_note(_frame(4400, 5000).assign(status="failed"), 0.01) is None
    assert tolerance_note(pd.DataFrame(), 0.01) is None
