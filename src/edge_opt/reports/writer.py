"""Reports from a ``RunResult``: CSV, JSON, PNG and a Markdown report, each written atomically.

Reads nothing but the result, so ``edge-opt report RUN_DIR`` can rebuild every file from
``run_result.json`` without re-running.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from edge_opt.analysis.hardware import save_hardware_artifacts
from edge_opt.analysis.per_class import per_class_markdown
from edge_opt.errors import EdgeOptError
from edge_opt.infra.artifacts import (
    atomic_save_figure,
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
)
from edge_opt.infra.environment import sha256_file
from edge_opt.orchestrate.result import HardwareAnalysis, RunResult
from edge_opt.reports.page import peak_text
from edge_opt.reports.tables import percent

MIB = 2**20


def frontier_frame(sweep: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """Frontier rows in frontier order; headers only when empty."""
    if not ids:
        return sweep.iloc[0:0]
    indexed = sweep.set_index("candidate_id", drop=False)
    return indexed.loc[ids].reset_index(drop=True)


def build_summary(result: RunResult) -> dict[str, Any]:
    """The machine-readable verdict of a run (summary.json)."""
    sweep = result.sweep_frame()
    ok = sweep[sweep["status"] == "ok"] if not sweep.empty else sweep
    accepted = ok[ok["accepted"].astype(bool)] if not ok.empty else ok
    rec_id = result.recommendation["candidate_id"]
    rec_row = None
    if rec_id is not None:
        rec_row = sweep[sweep["candidate_id"] == rec_id].iloc[0].to_dict()
    base_row = None
    if not sweep.empty and (sweep["candidate_id"] == result.baseline["candidate_id"]).any():
        base_row = sweep[sweep["candidate_id"] == result.baseline["candidate_id"]].iloc[0].to_dict()
    cfg = result.config
    return {
        "status": "ok",
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "wall_seconds": round(result.timings_s.get("total", float("nan")), 2),
        "dataset": {
            **{k: result.data[k] for k in ("name", "source", "sizes", "input_shape")},
            **{k: result.data[k] for k in ("class_names", "skipped_images") if k in result.data},
        },
        "model": result.baseline["model"],
        "baseline": {**result.baseline, "metrics": base_row},
        "study_rows": len(sweep),
        "ok_rows": len(ok),
        "failed_rows": int((sweep["status"] == "failed").sum()) if not sweep.empty else 0,
        "skipped_rows": int((sweep["status"] == "skipped").sum()) if not sweep.empty else 0,
        "accepted_rows": len(accepted),
        "rejected_rows": len(ok) - len(accepted),
        "memory_budgets_mb": cfg["memory_budgets_mb"],
        "active_memory_budget_mb": cfg["active_memory_budget_mb"],
        "budget_constrains": {
            "model": "memory_mb (serialized model size)",
            "runtime": "runtime_memory_mb (serialized size + peak live activations)",
        }[cfg.get("memory_budget_metric", "model")],
        "latency_batch_size": cfg["latency_batch_size"],
        "benchmark_threads": cfg["benchmark_threads"],
        "latency_multiplier": 1.0 / cfg["cpu_frequency_scale"],
        "best_accuracy_accepted": float(accepted["accuracy"].max()) if not accepted.empty else None,
        "lowest_latency_p50_ms_accepted": float(accepted["latency_p50_ms"].min())
        if not accepted.empty
        else None,
        "recommended": rec_id,
        "recommended_reason": result.recommendation["reason"],
        "decision": result.recommendation.get("decision"),
        "latency_budget_ms": cfg.get("latency_budget_ms"),
        "recommended_metrics": rec_row,
        "pareto_frontier_latency": result.latency_frontier,
        "pareto_frontier_energy": result.energy_frontier,
        "pareto_use_ci": cfg["pareto_use_ci"],
        "exported_models": result.exported_models,
        "target_device": result.device_profile.get("name"),
        "edge_constraints": {p["subject"]: p["edge_constraints"] for p in result.hardware_profiles},
        "projection": _projection_summary(result),
        "hardware": {
            "baseline": {
                "candidate_id": result.hardware_baseline.candidate_id,
                **result.hardware_baseline.summary,
            },
            "recommended": None
            if result.hardware_recommended is None
            else {
                "candidate_id": result.hardware_recommended.candidate_id,
                **result.hardware_recommended.summary,
            },
        },
        "warnings": result.warnings,
        "timings_s": {k: round(v, 2) for k, v in result.timings_s.items()},
    }


def _projection_summary(result: RunResult) -> dict[str, Any] | None:
    if not result.projection or not result.projection.get("validation"):
        return None
    v = result.projection["validation"]
    if not v.get("candidates"):
        return {
            "column": result.projection["column"],
            "target": result.projection["target"],
            "loo_candidates": 0,
            "note": "not validated: needs at least 3 pruning levels per runtime and precision",
        }
    return {
        "column": result.projection["column"],
        "target": result.projection["target"],
        "loo_candidates": v["candidates"],
        "within_10pct": v["within_10pct"],
        "within_25pct": v["within_25pct"],
        "median_abs_error_pct": v["median_abs_error_pct"],
    }


def _write_profiles(result: RunResult, out: Path) -> list[Path]:
    from edge_opt.analysis.devices import profile_from_dict
    from edge_opt.analysis.profiling import (
        HardwareProfileTable,
        plot_roofline,
        write_hardware_profile_artifacts,
    )

    paths: list[Path] = []
    base_id = result.hardware_baseline.candidate_id
    for data in result.hardware_profiles:
        table = HardwareProfileTable(**{k: v for k, v in data.items() if k != "profiled"})
        folder = out if data["subject"] == base_id else out / "candidates" / data["subject"]
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


def _profile_section(result: RunResult) -> list[str]:
    lines = ["## Device, operators and projection", ""]
    device = result.device_profile
    if device:
        bw = device["memory_bandwidth_gbps"]
        peaks = ", ".join(peak_text(k, v) for k, v in device["peak_gmacs"].items())
        lines += [
            f"Target `{device['name']}`: {device['description']}; bandwidth "
            f"{bw['value']:.4g} GB/s ({bw['source']}); peaks {peaks}. Roofline: "
            "`roofline.png`, `roofline.csv`.",
            "",
        ]
    for data in result.hardware_profiles:
        totals, ops = data["totals"], pd.DataFrame(data["operator_profile"])
        util = totals.get("stream_utilization")
        lines += [
            f"**`{data['subject']}`** (profiled: {data.get('profiled', 'the module')}): "
            f"{totals['latency_ms']:.4g} ms over operators (profiler overhead included), "
            f"{totals['memory_kb']:.4g} KB allocated per call"
            + (
                f", stream utilisation {util:.2%} of {totals['stream_interval_ms']:g} ms"
                if util is not None
                else ""
            )
            + ".",
            f"- cache: {data['edge_constraints']['cache_sensitivity']}",
            f"- bottleneck: {data['edge_constraints']['bottleneck']}",
            "",
            _md_table(ops.head(8)),
        ]
    summary = _projection_summary(result)
    if summary is not None and not summary["loo_candidates"]:
        lines += [f"Projection `{summary['column']}` (a model): {summary['note']}.", ""]
    elif summary is not None:
        lines += [
            f"Projection `{summary['column']}` (a model, never a measurement): leave-one-out on "
            f"this host over {summary['loo_candidates']} candidates, "
            f"{summary['within_10pct']:.0%} within +-10%, {summary['within_25pct']:.0%} within "
            f"+-25%, median error {summary['median_abs_error_pct']:.1f}% "
            "(`projection_validation.json`).",
            "",
        ]
    return lines


def _md_table(frame: pd.DataFrame, float_fmt: str = ".4g") -> str:
    if frame.empty:
        return "_(none)_\n"
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame.iterrows():
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append("" if pd.isna(value) else format(value, float_fmt))
            else:
                cells.append("" if value is None else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _dominated_sentence(sweep: pd.DataFrame) -> str:
    """How many candidates stopped early because a candidate at least as good beat them."""
    if "latency_stop_reason" not in sweep:
        return ""
    count = int((sweep["latency_stop_reason"] == "dominated").sum())
    if not count:
        return ""
    return (
        f" {count} candidate(s) stopped being timed earlier (`dominated`): a candidate at "
        "least as accurate, within the memory budget and its p95 within the latency budget, "
        "was faster beyond both p50 CIs and on the mean, so no decision depended on more "
        "precision; their CIs are wider (`latency_dominated_by` names it)."
    )


def _training_sentence(baseline: dict[str, Any]) -> str:
    """How long every candidate trained, and whether the baseline had stopped improving."""
    note = baseline.get("training")
    if not note:
        return "- Training: not recorded (a run from an older edge-opt)."
    losses = ", ".join(f"{v:.4f}" for v in note["val_loss_per_epoch"]) or "not measured"
    falling = {True: "still falling", False: "no longer falling", None: "unknown"}[
        note["val_loss_still_falling"]
    ]
    return (
        f"- Training: every candidate, the unpruned one included, had "
        f"{note['total_epochs_per_candidate']} epoch(s) ({note['baseline_epochs']} baseline + "
        f"{note['fine_tune_epochs']} fine-tuning after pruning at its level, 0 included), so "
        "no candidate wins by training longer; the recommendation's reference accuracy is "
        f"p00-fp32-eager's ({baseline.get('reference_val_accuracy', float('nan')):.4f}). "
        f"Baseline validation loss per epoch: {losses} ({falling} at the last epoch"
        + (
            "; more `epochs` may raise every candidate's accuracy)."
            if falling == "still falling"
            else ")."
        )
    )


def _decision_lines(decision: dict[str, Any] | None) -> list[str]:
    if not decision:
        return []
    lines = [f"**What decided it:** {decision['decided_by']}. {decision['explanation']}.", ""]
    if decision["flips"]:
        lines += ["**What would flip it:**", ""]
        lines += [f"- {flip}" for flip in decision["flips"]]
        lines.append("")
    return lines


def _energy_plot_sentence(sweep: pd.DataFrame) -> str:
    from edge_opt.reports.plots import constant_power

    power = constant_power(sweep)
    if power is None:
        return (
            "Plots: `accuracy_vs_latency.png`, `accuracy_vs_energy.png`, `accuracy_vs_memory.png`."
        )
    return (
        "Plots: `accuracy_vs_latency.png`, `accuracy_vs_memory.png`. No energy plot: the energy "
        f"proxy is mean latency x one constant {power:g} W for every candidate, so it ranks "
        "them exactly as mean latency does and its plot would repeat the latency one; the "
        "energy frontier above (by mean latency, not p50) is in `pareto_frontier_energy.csv`."
    )


def render_report(result: RunResult, summary: dict[str, Any]) -> str:
    """A human-readable Markdown report of the run."""
    sweep = result.sweep_frame()
    cols = [
        "candidate_id",
        "status",
        "accepted",
        "accuracy",
        "test_accuracy",
        "top1_agreement",
        "latency_p50_ms",
        "latency_p95_ms",
        "speedup_vs_baseline",
        "throughput_sps",
        "memory_mb",
        "runtime_memory_mb",
        "measured_peak_rss_mb",
        "energy_proxy_j",
        "noisy",
    ]
    table = sweep[[c for c in cols if c in sweep.columns]].copy()
    for col in ("memory_mb", "runtime_memory_mb"):
        if col in table:
            table[col.replace("_mb", "_kib")] = table.pop(col) * 1024
    cfg = result.config
    env = result.environment
    isa = ", ".join(k for k, v in env["cpu"]["isa"].items() if v)
    rec = summary["recommended"]
    lines = [
        "# edge-opt report",
        "",
        f"Run {result.started_at} -> {result.finished_at} ({summary['wall_seconds']} s); "
        f"edge-opt {env['edge_opt_version']}, torch {env['packages'].get('torch')}, "
        f"commit {env['git']['commit'] or 'unknown'}.",
        "",
        "## Verdict",
        "",
        f"**Recommended: `{rec}`**" if rec else "**No recommendation.**",
        "",
        summary["recommended_reason"],
        "",
        *_decision_lines(summary.get("decision")),
        f"Accepted {summary['accepted_rows']} of {summary['ok_rows']} measured candidates "
        f"({summary['failed_rows']} failed, {summary['skipped_rows']} skipped) under the "
        "active budget of "
        f"{cfg['active_memory_budget_mb']:g} MB on {summary['budget_constrains']} "
        "(MB = 2^20 bytes).",
        "",
        "## Setup",
        "",
        f"- Data: {result.data['source']} ({result.data['name']}); sizes "
        f"{result.data['sizes']} (selection on val, test reported only)"
        + (
            f"; {result.data['skipped_images']} unreadable image(s) skipped (skip_bad_images)."
            if result.data.get("skipped_images")
            else "."
        ),
        f"- Baseline: {result.baseline['model']}, {result.baseline['parameter_count']} parameters, "
        f"val accuracy {result.baseline['val_accuracy']:.4f}, test accuracy "
        f"{result.baseline['test_accuracy']:.4f}.",
        _training_sentence(result.baseline),
        f"- Latency: per call at batch {cfg['latency_batch_size']}, "
        f"{cfg['benchmark_threads']} thread(s); all candidates timed together in interleaved "
        f"rounds of {cfg['benchmark_repeats']} calls each ({cfg['benchmark_trials']} to "
        f"{cfg['benchmark_max_rounds']} rounds, until each p50 is known within +-"
        f"{percent(cfg['benchmark_precision'])} of the p50 (95% CI, over rounds and "
        f"{cfg['benchmark_instances']} independently built instance(s))), after warm-up until "
        "the median settled; "
        f"allocator: {env.get('allocator', {}).get('method', 'unknown')}; throughput at batch "
        f"{cfg['batch_size']}. `speedup_vs_baseline` is the median over paired rounds of "
        "baseline p50 / candidate p50." + _dominated_sentence(sweep),
        f"- Memory: `memory_kib` is the serialized model; `runtime_memory_kib` adds the peak of "
        "live activations (liveness walk); `measured_peak_rss_mb` is the peak-RSS growth of the "
        f"first inference in a fresh process. Budgets constrain `{cfg['memory_budget_metric']}`.",
        f"- Host: {env['cpu']['model']}; ISA: {isa}; quantized engine "
        f"{env['quantized_engine']}; load average before/after "
        f"{env.get('load_average_before')} / {env.get('load_average_after')}; energy counters: "
        f"{env.get('energy_counters', 'unknown')}.",
        "",
        "## Candidates",
        "",
        "Accuracy is on the validation split; `test_accuracy` on the held-out test split. "
        "Latencies in ms, size in KiB, energy proxy in J per call (latency x "
        f"{cfg['power_watts']:g} W, modelled).",
        "",
        _md_table(table),
        "## Pareto frontiers (accepted candidates only)",
        "",
        f"- accuracy vs p50 latency: {', '.join(result.latency_frontier) or '(empty)'}",
        f"- accuracy vs energy proxy: {', '.join(result.energy_frontier) or '(empty)'}",
        "",
        _energy_plot_sentence(sweep),
        "",
        "Deployable files of the recommended candidate and every frontier point: "
        + (", ".join(f"`{m['path']}`" for m in result.exported_models if m.get("path")) or "(none)")
        + " (sha256 in `manifest.json`; each has a sidecar `models/<id>.json` with its input, "
        "preprocessing and class names: `edge-opt predict MODEL IMAGE...` runs it).",
        "",
    ]
    lines += per_class_markdown(result.per_class_accuracy)
    lines += [
        "## Hardware (modelled traffic over measured latency)",
        "",
    ]
    for label, hw in (
        ("Baseline", result.hardware_baseline),
        ("Recommended", result.hardware_recommended),
    ):
        if hw is None:
            continue
        s = hw.summary
        lines += [
            f"**{label} `{hw.candidate_id}`** at batch {hw.batch_size}, {hw.latency_ms:.4g} ms: "
            f"{s['estimated_total_macs']:.4g} MACs, {s['estimated_total_bytes']:.4g} bytes, "
            f"achieved {s['achieved_gmacs']:.3g} GMAC/s and {s['achieved_bandwidth_gbps']:.3g} "
            f"GB/s = {s['bandwidth_utilization']:.2%} of the configured "
            f"{s['configured_memory_bandwidth_gbps']:g} GB/s.",
            "",
            _md_table(hw.layerwise_frame()),
        ]
    lines += _profile_section(result)
    lines += [
        "## Precision trade-offs",
        "",
        _md_table(pd.DataFrame(result.precision_tradeoffs)),
        "## Warnings",
        "",
    ]
    lines += [f"- {w}" for w in result.warnings] or ["- none"]
    lines += [
        "",
        "Every file in this directory is described in edge-opt's README (section *Output files*).",
        "",
    ]
    return "\n".join(lines)


def _write_hardware(out: Path, hw: HardwareAnalysis, precision_df: pd.DataFrame) -> list[Path]:
    summary = {
        "candidate_id": hw.candidate_id,
        "precision": hw.precision,
        "batch_size": hw.batch_size,
        "latency_ms": hw.latency_ms,
        **hw.summary,
    }
    return save_hardware_artifacts(out, hw.layerwise_frame(), precision_df, summary)


def _write_candidate_hardware(folder: Path, hw: HardwareAnalysis) -> list[Path]:
    summary = {
        "candidate_id": hw.candidate_id,
        "precision": hw.precision,
        "batch_size": hw.batch_size,
        "latency_ms": hw.latency_ms,
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
    if result.per_class_accuracy:
        per_class = pd.DataFrame(result.per_class_accuracy)
        paths.append(atomic_write_csv(out / "per_class_accuracy.csv", per_class))
    paths += _write_hardware(out, result.hardware_baseline, precision_df)
    for hw in result.hardware_candidates:
        paths += _write_candidate_hardware(out / "candidates" / hw.candidate_id, hw)
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
    """The accuracy-vs-cost plots; the energy one only when power differs between candidates
    (with one constant power, energy = latency x power ranks exactly as mean latency)."""
    from edge_opt.reports.plots import constant_power, scatter

    if sweep.empty:
        return []
    budget = result.config["active_memory_budget_mb"]
    rec = result.recommendation["candidate_id"]
    plots = [
        (
            "latency_p50_ms",
            "p50 latency per call (ms, measured)",
            "Accuracy vs latency",
            lat,
            "accuracy_vs_latency.png",
            None,
        ),
        (
            "memory_mb",
            "serialized model size (MB = 2^20 B)",
            "Accuracy vs model size",
            frontier_frame(sweep, result.memory_frontier),
            "accuracy_vs_memory.png",
            budget,
        ),
    ]
    if constant_power(sweep) is None:
        plots.insert(
            1,
            (
                "energy_proxy_j",
                "energy proxy per call (J, modelled)",
                "Accuracy vs energy",
                energy,
                "accuracy_vs_energy.png",
                None,
            ),
        )
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
    from edge_opt.infra.rundir import locked_run_dir, require_finished_run

    with locked_run_dir(run_dir) as locked:
        status = require_finished_run(locked.out, lock_held=True)
        source = locked.out / "run_result.json"
        result = RunResult.load(source)
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
