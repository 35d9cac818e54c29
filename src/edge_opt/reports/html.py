"""``report.html``: the run's report as one self-contained page.

The verdict and its reason come first, then the accuracy/latency frontier (inline SVG, hover
cards), the sortable and filterable candidate table, the precision trade-offs, the hardware
section with the roofline, the environment and the warnings. Nothing is fetched: styles and
script are inline, figures are ``data:`` URIs, and the candidates travel as JSON in the page.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

from edge_opt.analysis.candidates import HardwareAnalysis
from edge_opt.candidates.columns import C, column, label
from edge_opt.decide.target import TargetAnswer
from edge_opt.reports.page import (
    Column,
    bullet_list,
    esc,
    key_values,
    page,
    peak_text,
    table,
)
from edge_opt.reports.recovery import recovery_html
from edge_opt.reports.result import RunResult
from edge_opt.reports.svg import Point, frontier_svg, legend_html

# The candidate table of report.html: schema columns (headers, formats, tooltips from the
# schema).
CANDIDATE_TABLE = (
    C.candidate_id,
    C.verdict,
    C.accuracy,
    C.accuracy_ci95_low,
    C.accuracy_ci95_high,
    C.latency_p50_ms,
    C.latency_p50_ci95_low_ms,
    C.latency_p50_ci95_high_ms,
    C.latency_p95_ms,
    C.speedup_vs_baseline,
    C.memory_mb,
    C.runtime_memory_mb,
    C.throughput_sps,
    C.energy_proxy_j,
    C.test_accuracy,
    C.noisy,
    C.error,
)


def schema_column(name: str) -> Column:
    """The HTML column of a schema column."""
    spec = column(name)
    fmt = spec.fmt if spec.fmt and spec.fmt != "d" else (".0f" if spec.fmt == "d" else None)
    return Column(name, label(name), fmt, spec.meaning, spec.table_scale)


CANDIDATE_COLUMNS = [schema_column(name) for name in CANDIDATE_TABLE]
VERDICT_FILTERS = ("accepted", "frontier", "dominated", "rejected", "failed", "skipped")


def candidate_verdict(row: Mapping[str, Any], frontier: set[str], recommended: str | None) -> str:
    """One word for a row: its status when not measured, else where it stands."""
    if row.get(C.status) != "ok":
        return str(row.get(C.status))
    if row[C.candidate_id] == recommended:
        return "recommended"
    if not bool(row.get(C.accepted)):
        return "rejected"
    return "frontier" if row[C.candidate_id] in frontier else "dominated"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def candidate_records(result: RunResult) -> list[dict[str, Any]]:
    """Every sweep row with its verdict, size in KiB and frontier/recommended flags."""
    frontier = set(result.latency_frontier)
    recommended = result.recommendation.get(C.candidate_id)
    records = []
    for row in result.sweep:
        size = _number(row.get(C.model_size_bytes))
        record = dict(row)
        record.update(
            size_kib=None if size is None else size / 1024,  # the plot's hover text
            verdict=candidate_verdict(row, frontier, recommended),
            recommended=row[C.candidate_id] == recommended,
            on_frontier=row[C.candidate_id] in frontier,
        )
        records.append(record)
    return records


def frontier_points(records: list[dict[str, Any]]) -> list[Point]:
    """One point per timed candidate (status ok with a p50 and an accuracy)."""
    points = []
    for r in records:
        p50, acc = _number(r.get(C.latency_p50_ms)), _number(r.get(C.accuracy))
        if r.get(C.status) != "ok" or p50 is None or acc is None:
            continue
        verdict = "frontier" if r["on_frontier"] else "dominated"
        if not bool(r.get(C.accepted)):
            verdict = "rejected"
        points.append(
            Point(
                candidate_id=str(r[C.candidate_id]),
                precision=str(r.get(C.precision)),
                runtime=str(r.get(C.runtime, "eager")),
                p50_ms=p50,
                p50_low_ms=_number(r.get(C.latency_p50_ci95_low_ms)),
                p50_high_ms=_number(r.get(C.latency_p50_ci95_high_ms)),
                accuracy=acc,
                verdict=verdict,
                recommended=bool(r["recommended"]),
            )
        )
    return points


def _header(result: RunResult, summary: Mapping[str, Any]) -> str:
    env = result.environment
    return (
        "<header><h1>edge-opt report</h1>"
        f'<p class="meta">{esc(result.baseline.get("model"))} on {esc(result.data.get("name"))} '
        f"({esc(result.data.get('source'))}); run {esc(result.started_at)} to "
        f"{esc(result.finished_at)} ({esc(summary.get('wall_seconds'))} s); edge-opt "
        f"{esc(env.get('edge_opt_version'))}, torch {esc(env.get('packages', {}).get('torch'))}, "
        f'commit <span class="mono">{esc((env.get("git") or {}).get("commit") or "unknown")}'
        "</span></p></header>"
    )


def _verdict(result: RunResult, summary: Mapping[str, Any]) -> str:
    rec = summary.get("recommended")
    cfg = result.config
    pick = f'Recommended: <span class="mono">{esc(rec)}</span>' if rec else "No recommendation"
    files = [m["path"] for m in result.exported_models if m.get(C.candidate_id) == rec]
    deploy = f' Deployable file: <span class="mono">{esc(files[0])}</span>.' if files else ""
    answer = summary.get("target")
    lines = TargetAnswer(**answer).lines() if answer else []
    target = "".join(f'<p class="target">{esc(line)}</p>' for line in lines)
    note = summary.get("tolerance_note")
    noise = f'<p class="note"><b>Within noise:</b> {esc(note)}.</p>' if note else ""
    return (
        f'<section id="verdict" class="verdict{"" if rec else " none"}">{target}'
        f'<div class="pick">{pick}</div><div class="why">{esc(summary.get("recommended_reason"))}'
        "</div>"
        f"{_decision(summary.get('decision'))}{noise}"
        f'<p class="note">Accepted {esc(summary.get("accepted_rows"))} of '
        f"{esc(summary.get('ok_rows'))} measured candidates ({esc(summary.get('failed_rows'))} "
        f"failed, {esc(summary.get('skipped_rows'))} skipped) under the active budget of "
        f"{esc(format(cfg.get('active_memory_budget_mb', float('nan')), 'g'))} MB on "
        f"{esc(summary.get('budget_constrains'))}; accuracy tolerance "
        f"{esc(cfg.get('max_accuracy_drop'))} below the baseline's validation accuracy.{deploy}"
        "</p></section>"
    )


def _decision(decision: Mapping[str, Any] | None) -> str:
    """What decided the pick and what would flip it (``edge_opt.decide.explain``)."""
    if not decision:
        return ""
    flips = "".join(f"<li>{esc(flip)}</li>" for flip in decision.get("flips", []))
    return (
        f'<div class="decision"><p><b>What decided it:</b> {esc(decision.get("decided_by"))}. '
        f"{esc(decision.get('explanation'))}.</p>"
        + (f"<p><b>What would flip it:</b></p><ul>{flips}</ul>" if flips else "")
        + "</div>"
    )


def _frontier(result: RunResult, points: list[Point]) -> str:
    front = ", ".join(result.latency_frontier) or "(empty)"
    return (
        '<section id="frontier-section"><h2>Accuracy vs latency</h2>'
        '<p class="note">Every timed candidate at its measured p50 (batch '
        f"{esc(result.config.get('latency_batch_size'))}) and validation accuracy. Hover or "
        "focus a point for its figures; click it to find its row. The line is the Pareto "
        f"frontier over accepted candidates: {esc(front)}.</p>"
        f'<div class="plot-wrap">{frontier_svg(points)}<div id="tooltip" class="tooltip" '
        f'role="status"></div></div>{legend_html(points)}</section>'
    )


def _candidates(records: list[dict[str, Any]]) -> str:
    attrs = [
        {
            "data-id": str(r[C.candidate_id]),
            "class": " ".join(
                [str(r.get(C.status)), str(r["verdict"])]
                + ([C.accepted] if r["verdict"] in ("recommended", "frontier", "dominated") else [])
                + (["frontier"] if r["on_frontier"] and r["verdict"] == "recommended" else [])
            ),
        }
        for r in records
    ]
    options = "".join(f'<option value="{v}">{v}</option>' for v in VERDICT_FILTERS)
    select = (
        '<label>Show <select class="verdict-filter" data-table="candidates">'
        f'<option value="">all</option>{options}</select></label>'
    )
    body = table("candidates", CANDIDATE_COLUMNS, records, attrs)
    body = body.replace('<div class="filters">', f'<div class="filters">{select}', 1)
    return (
        '<section id="candidates-section"><h2>Candidates</h2><p class="note">Click a header '
        "to sort (again to reverse); type to filter. Every column of every row is in "
        "<code>sweep_results.csv</code>.</p>"
        f"{body}</section>"
    )


def _per_class(result: RunResult) -> str:
    """Which classes the recommended candidate gained or lost against the reference."""
    rows = result.per_class_accuracy
    if not rows:
        return ""
    columns = [
        Column("class_name", "class"),
        Column("images", "images", "g"),
        Column("reference_accuracy", f"{rows[0]['reference_id']}", ".4f"),
        Column("candidate_accuracy", f"{rows[0].get('candidate_id') or 'recommended'}", ".4f"),
        Column("accuracy_change", "change", "+.4f", "recommended - reference"),
    ]
    return (
        '<section id="per-class"><h2>Per-class accuracy (validation split)</h2><p class="note">'
        "Sort by change to see which classes the recommended candidate hurt.</p>"
        f"{table('per-class-table', columns, rows, filterable=False)}</section>"
    )


def _tradeoffs(result: RunResult) -> str:
    rows = result.precision_tradeoffs
    if not rows:
        return ""
    columns = [
        Column("runtime", "runtime"),
        Column("precision", "precision"),
        Column("candidates", "candidates", "g"),
        Column("accuracy_mean", "accuracy", ".4f"),
        Column("latency_p50_ms_mean", "p50 ms", ".4g"),
        Column("memory_mb_mean", "size MB", ".4g"),
        Column("accepted_ratio", "accepted", ".2f"),
        Column("latency_p50_ratio_vs_fp32", "p50 / fp32", ".3g", "same runtime's fp32"),
        Column("size_ratio_vs_fp32", "size / fp32", ".3g", "same runtime's fp32"),
    ]
    return (
        '<section id="tradeoffs"><h2>Precision trade-offs</h2><p class="note">Per runtime and '
        "precision; ratios are against fp32 of the same runtime at the same pruning level "
        "(median over levels; below 1 = faster or smaller).</p>"
        f"{table('tradeoff-table', columns, rows, filterable=False)}</section>"
    )


def _hardware_block(label: str, hw: HardwareAnalysis | None) -> str:
    if hw is None:
        return ""
    s = hw.summary
    pairs = [
        (
            "latency (mean, measured on this host)",
            f"{hw.latency_ms:.4g} ms at batch {hw.batch_size}",
        ),
        ("MACs", f"{s.get('estimated_total_macs', 0):.4g}"),
        ("bytes (modelled traffic)", f"{s.get('estimated_total_bytes', 0):.4g}"),
        (
            "achieved on this host",
            f"{s.get('achieved_gmacs', 0):.3g} GMAC/s, "
            f"{s.get('achieved_bandwidth_gbps', 0):.3g} GB/s",
        ),
        (
            "bandwidth utilisation",
            f"{s.get('bandwidth_utilization', 0):.2%} of "
            f"{s.get('configured_memory_bandwidth_gbps', 0):g} GB/s",
        ),
    ]
    if s.get("target_bound_regime"):
        pairs.append(
            (
                f"on {s.get('target_device', 'the target')} (modelled, not measured)",
                f"{s['target_bound_regime']} by arithmetic intensity (knee "
                f"{s.get('target_knee_macs_per_byte', 0):.3g} MAC/B)",
            )
        )
    return f'<h3>{esc(label)} <span class="mono">{esc(hw.candidate_id)}</span></h3>' + key_values(
        pairs
    )


def _hardware(result: RunResult, images: Mapping[str, bytes]) -> str:
    parts = ['<section id="hardware"><h2>Hardware and roofline</h2>']
    device = result.device_profile
    if device:
        bw = device.get("memory_bandwidth_gbps", {})
        peaks = ", ".join(peak_text(k, v) for k, v in device.get("peak_gmacs", {}).items())
        parts.append(
            key_values(
                [
                    ("target device", f"{device.get('name')}: {device.get('description')}"),
                    (
                        "memory bandwidth",
                        f"{bw.get('value', float('nan')):.4g} GB/s ({bw.get('source')})",
                    ),
                    ("peaks", peaks),
                ]
            )
        )
    parts.append(_hardware_block("Baseline", result.hardware_baseline))
    parts.append(_hardware_block("Recommended", result.hardware_recommended))
    for data in result.hardware_profiles:
        constraints = data.get("edge_constraints", {})
        parts.append(
            f'<p><span class="mono">{esc(data.get("subject"))}</span>: '
            + esc("; ".join(f"{k}: {v}" for k, v in constraints.items()))
            + "</p>"
        )
    if "roofline.png" in images:
        encoded = base64.b64encode(images["roofline.png"]).decode("ascii")
        parts.append(
            f'<img class="figure" alt="roofline of the target device with the baseline\'s '
            f'layers and every candidate" src="data:image/png;base64,{encoded}">'
        )
    if result.roofline_candidates:
        columns = [
            Column(C.candidate_id, "candidate"),
            Column("precision", "precision"),
            Column("intensity_macs_per_byte", "MAC/byte", ".3g"),
            Column("achieved_gmacs", "GMAC/s", ".3g"),
            Column("target_knee_macs_per_byte", "knee MAC/byte", ".3g"),
            Column("target_bound_regime", "regime"),
        ]
        parts.append(table("roofline-table", columns, result.roofline_candidates, filterable=False))
    parts.append("</section>")
    return "".join(parts)


def _environment(result: RunResult) -> str:
    env = result.environment
    cpu = env.get("cpu", {})
    isa = ", ".join(k for k, v in cpu.get("isa", {}).items() if v)
    packages = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items())
    git = env.get("git") or {}
    pairs = [
        ("CPU", f"{cpu.get('model')} ({cpu.get('logical_cpus')} logical CPUs)"),
        ("ISA", isa),
        ("python", env.get("python")),
        ("platform", env.get("platform")),
        ("packages", packages),
        ("quantized engine", env.get("quantized_engine")),
        ("timing threads", env.get("benchmark_threads")),
        ("allocator", (env.get("allocator") or {}).get("method")),
        ("CPU governor", env.get("cpu_governor")),
        ("energy counters", env.get("energy_counters")),
        (
            "load average before / after",
            f"{env.get('load_average_before')} / {env.get('load_average_after')}",
        ),
        ("git", f"{git.get('commit') or 'unknown'}" + (" (dirty)" if git.get("dirty") else "")),
        ("command", " ".join(str(c) for c in env.get("command", []))),
    ]
    return f'<section id="environment"><h2>Environment</h2>{key_values(pairs)}</section>'


def _warnings(result: RunResult) -> str:
    body = bullet_list(result.warnings).replace("<ul>", '<ul class="warnings">', 1)
    return f'<section id="warnings"><h2>Warnings</h2>{body}</section>'


def render_html(
    result: RunResult, summary: Mapping[str, Any], images: Mapping[str, bytes] | None = None
) -> str:
    """The whole page.

    Args:
        result: the run.
        summary: ``build_summary(result)`` (the same verdict as ``summary.json``).
        images: PNG bytes by file name to embed (``roofline.png``), as ``data:`` URIs.

    Returns:
        A complete HTML document that requests nothing from anywhere.
    """
    images = images or {}
    records = candidate_records(result)
    points = frontier_points(records)
    body = "\n".join(
        [
            _header(result, summary),
            _verdict(result, summary),
            _frontier(result, points),
            _candidates(records),
            recovery_html(result),
            _per_class(result),
            _tradeoffs(result),
            _hardware(result, images),
            _environment(result),
            _warnings(result),
            '<p class="note">Every file of the run directory is described in edge-opt\'s '
            "docs/outputs.md (<em>Output files</em>).</p>",
        ]
    )
    data = {
        "kind": "edge-opt run report",
        "recommended": summary.get("recommended"),
        "recommended_reason": summary.get("recommended_reason"),
        "latency_frontier": result.latency_frontier,
        "candidates": records,
        "warnings": result.warnings,
    }
    title = f"edge-opt report: {summary.get('recommended') or 'no recommendation'}"
    return page(title, body, data)
