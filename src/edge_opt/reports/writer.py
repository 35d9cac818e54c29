"""Writing a run's reports from its ``RunResult``: CSV, JSON, PNG, Markdown and HTML, each
atomically; ``rebuild_reports`` does it again from ``run_result.json``.

Reads nothing but the result, so ``edge-opt report RUN_DIR`` can rebuild every file without
re-running."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from edge_opt.analysis.candidates import HardwareAnalysis
from edge_opt.candidates.columns import C
from edge_opt.errors import EdgeOptError
from edge_opt.infra.artifacts import (
    atomic_save_figure,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
)
from edge_opt.infra.environment import sha256_file
from edge_opt.infra.verified import contained
from edge_opt.reports.hardware_files import save_hardware_artifacts
from edge_opt.reports.markdown import render_report
from edge_opt.reports.recovery import curves_frame
from edge_opt.reports.result import RunResult
from edge_opt.reports.summary import build_summary, frontier_frame


def _write_profiles(result: RunResult, out: Path) -> list[Path]:
    from edge_opt.analysis.device_profiles import profile_from_dict
    from edge_opt.analysis.profiling import HardwareProfileTable
    from edge_opt.reports.hardware_files import plot_roofline, write_hardware_profile_artifacts

    paths: list[Path] = []
    base_id = result.hardware_baseline.candidate_id
    for data in result.hardware_profiles:
        table = HardwareProfileTable(**{k: v for k, v in data.items() if k != "profiled"})
        subject = data["subject"]
        folder = out if subject == base_id else contained(out, f"candidates/{subject}")
        paths += write_hardware_profile_artifacts(table, folder)
    if result.device_profile:
        device = profile_from_dict(result.device_profile)
        layers = pd.DataFrame(result.roofline_layers)
        candidates = pd.DataFrame(result.roofline_candidates)
        host = profile_from_dict(result.host_profile) if result.host_profile else None
        paths.append(plot_roofline(device, layers, candidates, out / "roofline.png", host))
        rows = pd.concat(
            [layers.assign(scope="baseline layer"), candidates.assign(scope="candidate")],
            ignore_index=True,
        )
        paths.append(atomic_write_csv(out / "roofline.csv", rows))
    if result.projection:
        paths.append(atomic_write_json(out / "projection_validation.json", result.projection))
    return paths


def _write_hardware(out: Path, hw: HardwareAnalysis, precision_df: pd.DataFrame) -> list[Path]:
    summary = {
        C.candidate_id: hw.candidate_id,
        "precision": hw.precision,
        "batch_size": hw.batch_size,
        C.latency_ms: hw.latency_ms,
        **hw.summary,
    }
    return save_hardware_artifacts(out, hw.layerwise_frame(), precision_df, summary)


def _write_candidate_hardware(folder: Path, hw: HardwareAnalysis) -> list[Path]:
    summary = {
        C.candidate_id: hw.candidate_id,
        "precision": hw.precision,
        "batch_size": hw.batch_size,
        C.latency_ms: hw.latency_ms,
        **hw.summary,
    }
    return [
        atomic_write_csv(folder / "layerwise_breakdown.csv", hw.layerwise_frame()),
        atomic_write_csv(folder / "hardware_summary.csv", pd.DataFrame([summary])),
    ]


def write_reports(result: RunResult, out_dir: str | Path) -> list[Path]:
    """Write every report file of a run into ``out_dir``; returns the paths written."""
    from edge_opt.config.loading import build_config, dump_config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sweep = result.sweep_frame()
    lat = frontier_frame(sweep, result.latency_frontier)
    energy = frontier_frame(sweep, result.energy_frontier)
    precision_df = pd.DataFrame(result.precision_tradeoffs)
    summary = build_summary(result)
    paths = [
        atomic_write_csv(out / "sweep_results.csv", sweep),
        atomic_write_csv(out / "pareto_frontier_latency.csv", lat),
        atomic_write_csv(out / "pareto_frontier_energy.csv", energy),
        atomic_write_json(out / "summary.json", summary),
        atomic_write_text(out / "config_resolved.yaml", dump_config(build_config(result.config))),
        atomic_write_json(out / "run_result.json", result.to_dict()),
        atomic_write_text(out / "report.md", render_report(result, summary)),
    ]
    if result.recovery:
        paths.append(atomic_write_csv(out / "recovery_curves.csv", curves_frame(result)))
    if result.per_class_accuracy:
        per_class = pd.DataFrame(result.per_class_accuracy)
        paths.append(atomic_write_csv(out / "per_class_accuracy.csv", per_class))
    paths += _write_hardware(out, result.hardware_baseline, precision_df)
    for hw in result.hardware_candidates:
        paths += _write_candidate_hardware(contained(out, f"candidates/{hw.candidate_id}"), hw)
    paths += _write_profiles(result, out)
    paths += _write_plots(result, out, sweep, lat, energy)
    paths.append(atomic_write_text(out / "report.html", _render_html(result, summary, out)))
    manifest = {
        "environment": result.environment,
        "config": result.config,
        "data": result.data,
        "checkpoint": {
            "path": result.baseline["checkpoint"],
            "sha256": result.baseline["checkpoint_sha256"],
        },
        # Every file of the run (checkpoint, variants, exports included), so `export` can
        # check each one before it reads it.
        "files": {
            str(p.relative_to(out)): sha256_file(p)
            for p in sorted(out.rglob("*"))
            if p.is_file()
            and p.name not in ("manifest.json", "run_status.json")
            and ".edge-opt" not in p.relative_to(out).parts
        },
        "exported_models": result.exported_models,
    }
    paths.append(atomic_write_json(out / "manifest.json", manifest))
    return paths


def _write_plots(
    result: RunResult, out: Path, sweep: pd.DataFrame, lat: pd.DataFrame, energy: pd.DataFrame
) -> list[Path]:
    """The accuracy-vs-cost plots. With one constant power, the energy proxy is mean latency x
    that power: its plot is still written (a seed artifact) and its title says it has the
    latency plot's shape."""
    from edge_opt.reports.plots import constant_power, scatter

    if sweep.empty:
        return []
    budget = result.config["active_memory_budget_mb"]
    rec = result.recommendation[C.candidate_id]
    power = constant_power(sweep)
    energy_title = "Accuracy vs energy" + (
        f" (one constant {power:g} W: mean latency's shape)" if power is not None else ""
    )
    plots = [
        (
            C.latency_p50_ms,
            "p50 latency per call (ms, measured)",
            "Accuracy vs latency",
            lat,
            "accuracy_vs_latency.png",
            None,
        ),
        (
            C.energy_proxy_j,
            "energy proxy per call (J, modelled)",
            energy_title,
            energy,
            "accuracy_vs_energy.png",
            None,
        ),
        (
            C.memory_mb,
            "serialized model size (MB = 2^20 B)",
            "Accuracy vs model size",
            frontier_frame(sweep, result.memory_frontier),
            "accuracy_vs_memory.png",
            budget,
        ),
    ]
    return [
        atomic_save_figure(out / name, scatter(sweep, front, x_col, label, title, bud, rec))
        for x_col, label, title, front, name, bud in plots
        if x_col in sweep.columns
    ]


def _render_html(result: RunResult, summary: dict[str, Any], out: Path) -> str:
    from edge_opt.reports.html import render_html

    roofline = out / "roofline.png"
    images = {"roofline.png": roofline.read_bytes()} if roofline.is_file() else {}
    return render_html(result, summary, images)


def rebuild_reports(run_dir: str | Path) -> tuple[list[Path], dict[str, Any]]:
    """What ``edge-opt report`` does: every report file again, from ``run_result.json``.

    The directory is locked meanwhile (a run in progress is refused). The files are written to
    a staging folder and moved in only once all of them were written, so a result that cannot
    be rendered leaves the run as it was. The manifest keeps the sha256 the run recorded for
    the files a report does not write (checkpoint, variants, exports): a rebuild never blesses
    a file changed since the run.

    Returns:
        The files rewritten, and the directory's status (after an interrupted rerun, the
        previous complete run's results are what is rebuilt).

    Raises:
        EdgeOptError: no complete run there, another process holds the directory, or a
            ``run_result.json`` that is unreadable, not a run result, or not renderable.
    """
    from edge_opt.infra.rundir import locked_run_dir
    from edge_opt.infra.runstatus import require_finished_run

    with locked_run_dir(run_dir) as locked:
        status = require_finished_run(locked.out, lock_held=True)
        source = locked.out / "run_result.json"
        result = RunResult.load_run(locked.out)
        try:
            write_reports(result, locked.staging)
        except (EdgeOptError, LookupError, TypeError, ValueError, AttributeError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise EdgeOptError(
                f"{source}: cannot rebuild reports ({type(exc).__name__}: {detail}); the file "
                "was not written by this edge-opt version or was edited: rerun the experiment"
            ) from exc
        manifest = json.loads((locked.staging / "manifest.json").read_text(encoding="utf-8"))
        manifest["files"] = {**_recorded_files(locked.out), **manifest["files"]}
        paths = []
        for path in sorted(p for p in locked.staging.rglob("*") if p.is_file()):
            if path.name == "manifest.json" and path.parent == locked.staging:
                continue
            target = locked.out / path.relative_to(locked.staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            paths.append(target)
        paths.append(atomic_write_json(locked.out / "manifest.json", manifest))
        return paths, status


def _recorded_files(out: Path) -> dict[str, str]:
    """The sha256 per file that the run's manifest recorded (empty if unreadable)."""
    try:
        files = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["files"]
        return {str(k): str(v) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
