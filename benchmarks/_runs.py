"""Shared by the benchmarks: use a finished run, or run a config into a temporary directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
