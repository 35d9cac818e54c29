"""Points drawn over each other in report.html's frontier plot stay reachable: the mark on
top names, in its tooltip, every candidate it hides (issue 20, item 7)."""

from __future__ import annotations

import re

from edge_opt.reports.svg import Point, frontier_svg


def point(cid: str, p50: float, accuracy: float, verdict: str = "frontier") -> Point:
    return Point(cid, "fp32", "eager", p50, None, None, accuracy, verdict, False)


def test_an_overlapped_point_is_named_by_the_one_drawn_over_it() -> None:
    svg = frontier_svg(
        [
            point("p00-fp32-eager", 1.0, 0.9),
            point("p00-fp32-onnxruntime", 1.001, 0.9, "dominated"),
            point("p50-fp32-eager", 0.5, 0.85),
        ]
    )
    titles = {t.split(":")[0]: t for t in re.findall(r"<title>(.*?)</title>", svg, re.S)}
    assert "also here: p00-fp32-onnxruntime" in titles["p00-fp32-eager"]
    assert "also here: p00-fp32-eager" in titles["p00-fp32-onnxruntime"]
    assert "also here" not in titles["p50-fp32-eager"]
