"""How far the latency projection can be trusted, checked on this host.

For a finished run (default: runs configs/default.yaml), fits the per-layer latency model on
all but one candidate and predicts the one left out, for every measured candidate, and prints,
last, the share of predictions within +-10% and +-25% and the median error. nn-Meter's
published bar is 99% within +-10% on its devices.

    .venv/bin/python benchmarks/projection.py [--run-dir DIR] [--config configs/default.yaml]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from _runs import run_or_reuse  # benchmarks/ is on sys.path when a script runs from it

from edge_opt.analysis.devices import host_profile
from edge_opt.analysis.projection import operator_count, roofline_time_ms, validate_projection
from edge_opt.reports.result import RunResult


def frame_for(result: RunResult, threads: int) -> pd.DataFrame:
    host = host_profile(threads)
    layers = {h.candidate_id: h.layerwise_frame() for h in result.hardware_candidates}
    rows = [r for r in result.sweep if r["candidate_id"] in layers]
    frame = pd.DataFrame(rows)
    frame["roofline_ms_host"] = [
        roofline_time_ms(layers[c], host, p)
        for c, p in zip(frame["candidate_id"], frame["precision"], strict=True)
    ]
    frame["operators"] = [operator_count(layers[c]) for c in frame["candidate_id"]]
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--run-dir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = run_or_reuse(args.config, args.run_dir, Path(tmp))
        result = RunResult.load(run_dir)
    frame = frame_for(result, int(result.config["benchmark_threads"]))
    validation = validate_projection(frame)
    per = pd.DataFrame(validation.per_candidate)
    print(per.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for runtime, group in per.groupby("runtime"):
        errors = group["error_pct"].abs()
        print(
            f"{runtime}: {len(group)} candidates, {(errors <= 10).mean():.0%} within +-10%, "
            f"median |error| {errors.median():.1f}%"
        )
    print(
        f"leave-one-out candidates={validation.candidates} "
        f"within_10pct={validation.within_10pct:.0%} within_25pct={validation.within_25pct:.0%} "
        f"median_abs_error={validation.median_abs_error_pct:.1f}% "
        f"worst_abs_error={validation.worst_abs_error_pct:.1f}% (nn-Meter bar: 99% within +-10%)"
    )


if __name__ == "__main__":
    main()
