"""Multi-seed runs: the whole experiment once per seed, then per-candidate means with 95% CIs.

Each seed's run is complete and kept in ``<output_dir>/seed_<s>/``. At the top level:
``multi_seed_summary.csv`` (one row per candidate: mean, std and Student-t 95% CI of accuracy,
test accuracy, p50 latency and energy proxy over seeds, and the share of seeds accepting it),
``multi_seed_frontier_latency.csv`` (the accuracy/latency frontier over the seed means, among
candidates accepted under every seed), ``multi_seed_summary.json``, and ``report.md`` /
``report.html`` with one recommendation over the seed means.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C
from edge_opt.candidates.record import CandidateResult
from edge_opt.compress.training import EpochStats
from edge_opt.config.schema import ExperimentConfig
from edge_opt.decide.frontier import pareto_frontier
from edge_opt.decide.recommend import recommend_across_seeds
from edge_opt.infra.cache import ArtifactCache
from edge_opt.infra.progress import NullProgress, Progress
from edge_opt.infra.rundir import RunDir
from edge_opt.orchestrate.context import RunContext, RunSink
from edge_opt.orchestrate.pipeline import run_pipeline
from edge_opt.orchestrate.protect import protected_run, warn_config_change
from edge_opt.reports.multiseed import write_multi_seed_reports
from edge_opt.reports.result import RunResult
from edge_opt.reports.writer import write_reports

log = logging.getLogger(__name__)

# Two-sided 95% Student-t critical values by degrees of freedom (1..30); normal beyond.
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]
SUMMARY_METRICS = ("accuracy", C.test_accuracy, C.latency_p50_ms, C.energy_proxy_j, C.memory_mb)


def t_critical_95(dof: int) -> float:
    if dof < 1:
        return float("nan")
    return _T95[dof - 1] if dof <= len(_T95) else 1.96


def mean_ci95(values: pd.Series) -> tuple[float, float, float, float]:
    """(mean, std, CI low, CI high) with a Student-t interval; NaN interval for one value."""
    clean = values.dropna().astype(float)
    n = len(clean)
    if n == 0:
        return (math.nan,) * 4
    mean = float(clean.mean())
    if n == 1:
        return (mean, math.nan, math.nan, math.nan)
    std = float(clean.std(ddof=1))
    half = t_critical_95(n - 1) * std / math.sqrt(n)
    return (mean, std, mean - half, mean + half)


def _clamp(metric: str, low: float, high: float) -> tuple[float, float]:
    # Every summarised metric is >= 0, and accuracies are proportions: a t-interval over a
    # handful of seeds can overshoot both ends.
    upper = 1.0 if C.accuracy in metric else math.inf
    return (max(0.0, low) if low == low else low, min(upper, high) if high == high else high)


def summarize_seeds(per_seed: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate over the seeds' sweep rows (a ``seed`` column identifies them)."""
    rows = []
    ok = per_seed[per_seed[C.status] == "ok"]
    for cid, group in per_seed.groupby(C.candidate_id, sort=False):
        good = ok[ok[C.candidate_id] == cid]
        row: dict[str, Any] = {
            C.candidate_id: cid,
            C.pruning_level: group[C.pruning_level].iloc[0],
            "precision": group[C.precision].iloc[0],
            "runtime": group[C.runtime].iloc[0],
            "seeds": len(group),
            "seeds_ok": len(good),
            "accepted_share": float(good[C.accepted].astype(bool).sum()) / len(group),
        }
        row["accepted_all"] = row["accepted_share"] == 1.0
        for metric in SUMMARY_METRICS:
            if metric in good:
                mean, std, low, high = mean_ci95(good[metric])
            else:
                mean = std = low = high = math.nan
            low, high = _clamp(metric, low, high)
            row.update(
                {
                    f"{metric}_mean": mean,
                    f"{metric}_std": std,
                    f"{metric}_ci95_low": low,
                    f"{metric}_ci95_high": high,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def multi_seed_frontier(summary: pd.DataFrame, use_ci: bool = False) -> pd.DataFrame:
    """Accuracy/latency frontier over seed means, among candidates accepted under every seed."""
    if summary.empty:
        return summary.copy()
    frame = summary.assign(
        accepted=summary["accepted_all"],
        accuracy=summary["accuracy_mean"],
        accuracy_ci95_low=summary[C.accuracy_ci95_low],
        status="ok",
    )
    front = pareto_frontier(frame, "latency_p50_ms_mean", use_ci=use_ci)
    return front[list(summary.columns)] if not front.empty else summary.iloc[0:0]


@dataclass(frozen=True)
class MultiSeedResult:
    seeds: list[int]
    runs: list[RunResult]
    summary: pd.DataFrame
    frontier: pd.DataFrame


def per_seed_config(cfg: ExperimentConfig, seed: int, output_dir: Path) -> ExperimentConfig:
    """The single-seed config of one run: ``seed`` set, ``seeds`` cleared, its own folder.

    An unset ``dataloader_seed`` follows the run's seed (as in a single-seed run); one the
    user set is kept for every run.
    """
    update: dict[str, object] = {"seed": seed, "seeds": None, "output_dir": str(output_dir)}
    if cfg.dataloader_seed_follows_seed:
        update["dataloader_seed"] = seed
    return cfg.model_copy(update=update)


def run_multi_seed(
    cfg: ExperimentConfig,
    on_candidate: Callable[[CandidateResult, int, int], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: Sequence[str] = ("edge-opt", "run"),
    opened: RunDir | None = None,
    progress: Progress | None = None,
) -> MultiSeedResult:
    """Run the experiment for every seed in ``cfg.seeds`` and write the multi-seed summaries.

    All seeds share one protected run directory (``edge_opt.infra.rundir``): every ``seed_*/``
    folder and the summaries are published together when the last seed completes, so a rerun never
    leaves an old seed's files beside new results.
    """
    if not cfg.seeds:
        raise ValueError("run_multi_seed needs `seeds` in the config")
    with protected_run(cfg.output_dir, overwrite, resume, command, opened) as run_dir:
        warn_config_change(run_dir, cfg)
        out = run_dir.staging
        cache = ArtifactCache(run_dir.cache_root)
        RunSink(out).config(cfg)
        runs, frames = [], []
        for index, seed in enumerate(cfg.seeds, start=1):
            log.info("seed %d (%d of %d)", seed, index, len(cfg.seeds))
            folder = out / f"seed_{seed}"
            seed_cfg = per_seed_config(cfg, seed, Path(cfg.output_dir) / f"seed_{seed}")

            def stage(name: str, seed: int = seed) -> None:
                run_dir.stage(f"seed {seed}: {name}")

            context = RunContext(folder, run_dir.tmp, cache, stage, progress or NullProgress())
            result = run_pipeline(seed_cfg, on_candidate, on_epoch, context)
            write_reports(result, folder)
            runs.append(result)
            frames.append(result.sweep_frame().assign(seed=seed))
        return _write_summaries(cfg, out, runs, frames)


def _write_summaries(
    cfg: ExperimentConfig, out: Path, runs: list[RunResult], frames: list[pd.DataFrame]
) -> MultiSeedResult:
    per_seed = pd.concat(frames, ignore_index=True)
    summary = summarize_seeds(per_seed)
    frontier = multi_seed_frontier(summary, cfg.pareto_use_ci)
    rec = recommend_across_seeds(
        summary,
        [r.baseline.get("reference_val_accuracy", r.baseline["val_accuracy"]) for r in runs],
        [r.recommendation.get(C.candidate_id) for r in runs],
        cfg.max_accuracy_drop,
        cfg.active_memory_budget_mb,
    )
    write_multi_seed_reports(out, list(cfg.seeds or ()), runs, summary, frontier, rec)
    return MultiSeedResult(list(cfg.seeds or ()), runs, summary, frontier)
