"""Shared by the benchmarks: use a finished run, or run a config into a temporary directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def run_or_reuse(
    config: str, run_dir: Path | None, scratch: Path, overrides: list[str] | None = None
) -> Path:
    """``run_dir`` if given, else a fresh ``edge-opt run config`` in ``scratch/run`` (with
    ``--set`` for each of ``overrides``)."""
    if run_dir is not None:
        return run_dir
    target = scratch / "run"
    edge_opt = Path(sys.executable).parent / "edge-opt"
    sets = [arg for item in overrides or [] for arg in ("--set", item)]
    proc = subprocess.run(
        [str(edge_opt), "run", config, "-o", str(target), *sets],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"edge-opt run failed:\n{proc.stderr}")
    return target


def normalised_front(sweep: pd.DataFrame, reference: str) -> list[tuple[str, float, float]]:
    """The accepted frontier as (id, p50 / reference p50, reference accuracy - accuracy): the
    points a hypervolume is taken over (benchmarks/search.py, benchmarks/recovery.py)."""
    ref = sweep[sweep["candidate_id"] == reference].iloc[0]
    ok = sweep[(sweep["status"] == "ok") & sweep["accepted"].astype(bool)]
    points = [
        (r.candidate_id, r.latency_p50_ms / ref.latency_p50_ms, ref.accuracy - r.accuracy)
        for r in ok.itertuples()
    ]
    front = [
        p
        for p in points
        if not any(q[1] <= p[1] and q[2] <= p[2] and (q[1] < p[1] or q[2] < p[2]) for q in points)
    ]
    return sorted(front, key=lambda p: p[1])
