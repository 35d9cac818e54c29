"""The Markdown report (``report.md``) of a run, from its ``RunResult``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from edge_opt.analysis.per_class import per_class_markdown
from edge_opt.candidates.columns import C, schema_table
from edge_opt.infra.text import percent
from edge_opt.reports.page import peak_text
from edge_opt.reports.recovery import recovery_markdown
from edge_opt.reports.result import RunResult
from edge_opt.reports.summary import projection_summary


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
            markdown_table(ops.head(8)),
        ]
    summary = projection_summary(result)
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


def markdown_table(frame: pd.DataFrame, float_fmt: str = ".4g") -> str:
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
    if C.latency_stop_reason not in sweep:
        return ""
    count = int((sweep[C.latency_stop_reason] == "dominated").sum())
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
    budget = note["fine_tune_epochs"]
    if isinstance(budget, dict):  # one budget per level: each level's own
        per_level = ", ".join(f"{n} at p{round(float(lv) * 100):02d}" for lv, n in budget.items())
        training = (
            f"{note['baseline_epochs']} baseline epoch(s), then its level's fine-tuning "
            f"({per_level}; the unpruned level included), so the reference had the budget "
            "of level 0"
        )
    else:
        training = (
            f"{note['total_epochs_per_candidate']} epoch(s) ({note['baseline_epochs']} baseline "
            f"+ {budget} fine-tuning after pruning at its level, 0 included), so no candidate "
            "wins by training longer"
        )
    recovery = f"Recovery after pruning: {note['recovery']}. " if note.get("recovery") else ""
    return (
        f"- Training: every candidate, the unpruned one included, had {training}; "
        "the recommendation's reference accuracy is "
        f"p00-fp32-eager's ({baseline.get('reference_val_accuracy', float('nan')):.4f}). "
        f"{recovery}"
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
        "Plots: `accuracy_vs_latency.png`, `accuracy_vs_energy.png`, `accuracy_vs_memory.png`. "
        f"The energy proxy is mean latency x one constant {power:g} W for every candidate, so "
        "it ranks them exactly as mean latency does: the energy plot has the latency plot's "
        "shape (by mean latency, not p50); the energy frontier is in "
        "`pareto_frontier_energy.csv`."
    )


# The candidate table of report.md: schema columns (headers and formats from the schema).
CANDIDATE_TABLE = (
    C.candidate_id,
    C.status,
    C.accepted,
    C.accuracy,
    C.test_accuracy,
    C.top1_agreement,
    C.latency_p50_ms,
    C.latency_p95_ms,
    C.speedup_vs_baseline,
    C.throughput_sps,
    C.memory_mb,
    C.runtime_memory_mb,
    C.measured_peak_rss_mb,
    C.energy_proxy_j,
    C.noisy,
)


def render_report(result: RunResult, summary: dict[str, Any]) -> str:
    """A human-readable Markdown report of the run."""
    sweep = result.sweep_frame()
    env = result.environment
    lines = [
        "# edge-opt report",
        "",
        f"Run {result.started_at} -> {result.finished_at} ({summary['wall_seconds']} s); "
        f"edge-opt {env['edge_opt_version']}, torch {env['packages'].get('torch')}, "
        f"commit {env['git']['commit'] or 'unknown'}.",
        "",
        *_verdict_section(result, summary),
        *_setup_section(result, sweep),
        *_candidates_section(result, sweep),
        *recovery_markdown(result),
        *per_class_markdown(result.per_class_accuracy),
        *_hardware_section(result),
        *_profile_section(result),
        "## Precision trade-offs",
        "",
        markdown_table(pd.DataFrame(result.precision_tradeoffs)),
        "## Warnings",
        "",
        *([f"- {w}" for w in result.warnings] or ["- none"]),
        "",
        "Every file in this directory is described in edge-opt's manual (docs/outputs.md).",
        "",
    ]
    return "\n".join(lines)


def _target_lines(summary: dict[str, Any]) -> list[str]:
    from edge_opt.decide.target import TargetAnswer

    answer = summary.get("target")
    return TargetAnswer(**answer).lines() if answer else []


def _verdict_section(result: RunResult, summary: dict[str, Any]) -> list[str]:
    cfg, rec = result.config, summary["recommended"]
    return [
        "## Verdict",
        "",
        *[f"- {line}" for line in _target_lines(summary)],
        *([""] if summary.get("target") else []),
        f"**Recommended: `{rec}`**" if rec else "**No recommendation.**",
        "",
        summary["recommended_reason"],
        "",
        *_decision_lines(summary.get("decision")),
        *(
            [f"**Within noise:** {summary['tolerance_note']}.", ""]
            if summary.get("tolerance_note")
            else []
        ),
        f"Accepted {summary['accepted_rows']} of {summary['ok_rows']} measured candidates "
        f"({summary['failed_rows']} failed, {summary['skipped_rows']} skipped) under the "
        "active budget of "
        f"{cfg['active_memory_budget_mb']:g} MB on {summary['budget_constrains']} "
        "(MB = 2^20 bytes).",
        "",
    ]


def _setup_section(result: RunResult, sweep: pd.DataFrame) -> list[str]:
    cfg, env, data = result.config, result.environment, result.data
    isa = ", ".join(k for k, v in env["cpu"]["isa"].items() if v)
    skipped = data.get("skipped_images")
    return [
        "## Setup",
        "",
        f"- Data: {data['source']} ({data['name']}); sizes {data['sizes']} (selection on val, "
        "test reported only)"
        + (f"; {skipped} unreadable image(s) skipped (skip_bad_images)." if skipped else "."),
        f"- Baseline: {result.baseline['model']}, {result.baseline['parameter_count']} parameters; "
        f"trained, before fine-tuning: val accuracy {result.baseline['val_accuracy']:.4f}, "
        "test accuracy "
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
        "- Memory: `size KiB` is the serialized model; `runtime KiB` adds the peak of "
        "live activations (liveness walk); `RSS MB` is the peak-RSS growth of the "
        f"first inference in a fresh process. Budgets constrain `{cfg['memory_budget_metric']}`.",
        f"- Host: {env['cpu']['model']}; ISA: {isa}; quantized engine "
        f"{env['quantized_engine']}; load average before/after "
        f"{env.get('load_average_before')} / {env.get('load_average_after')}; energy counters: "
        f"{env.get('energy_counters', 'unknown')}.",
        "",
    ]


def _candidates_section(result: RunResult, sweep: pd.DataFrame) -> list[str]:
    exported = [f"`{m['path']}`" for m in result.exported_models if m.get("path")]
    return [
        "## Candidates",
        "",
        "Accuracy is on the validation split; `test_accuracy` on the held-out test split. "
        "Latencies in ms, size in KiB, energy proxy in J per call (latency x "
        f"{result.config['power_watts']:g} W, modelled).",
        "",
        schema_table(sweep.to_dict("records"), CANDIDATE_TABLE),
        "## Pareto frontiers (accepted candidates only)",
        "",
        f"- accuracy vs p50 latency: {', '.join(result.latency_frontier) or '(empty)'}",
        f"- accuracy vs energy proxy: {', '.join(result.energy_frontier) or '(empty)'}",
        "",
        _energy_plot_sentence(sweep),
        "",
        "Deployable files of the recommended candidate and the frontier points: "
        + (", ".join(exported) or "(none)")
        + " (sha256 in `manifest.json`; each has a sidecar `models/<id>.json` with its input, "
        "preprocessing and class names: `edge-opt predict MODEL IMAGE...` runs it)."
        + "".join(
            f" **Not written:** `{m[C.candidate_id]}` ({m.get('error')})."
            for m in result.exported_models
            if not m.get("path")
        ),
        "",
    ]


def _hardware_section(result: RunResult) -> list[str]:
    lines = ["## Hardware (modelled traffic over measured latency)", ""]
    for name, hw in (
        ("Baseline", result.hardware_baseline),
        ("Recommended", result.hardware_recommended),
    ):
        if hw is None:
            continue
        s = hw.summary
        lines += [
            f"**{name} `{hw.candidate_id}`** at batch {hw.batch_size}, {hw.latency_ms:.4g} ms "
            f"measured on this host: {s['estimated_total_macs']:.4g} MACs, "
            f"{s['estimated_total_bytes']:.4g} bytes, achieved on this host "
            f"{s['achieved_gmacs']:.3g} GMAC/s and {s['achieved_bandwidth_gbps']:.3g} GB/s = "
            f"{s['bandwidth_utilization']:.2%} of the configured "
            f"{s['configured_memory_bandwidth_gbps']:g} GB/s"
            + (
                f"; on {s['target_device']} (modelled from its arithmetic intensity, not "
                f"measured there): {s['target_bound_regime']}."
                if s.get("target_bound_regime")
                else "."
            ),
            "",
            markdown_table(hw.layerwise_frame()),
        ]
    return lines
