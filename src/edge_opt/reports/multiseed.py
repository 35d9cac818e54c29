"""The top-level report of a multi-seed run: one recommendation over the seeds' means
(``decide.recommend.recommend_across_seeds``), how many seeds picked it on their own, and every
candidate's mean with its 95% CI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from edge_opt.candidates.columns import C
from edge_opt.infra.artifacts import atomic_write_csv, atomic_write_json, atomic_write_text
from edge_opt.reports.page import Column, bullet_list, esc, page, table
from edge_opt.reports.result import RunResult


def _ci(row: Mapping[str, Any], metric: str, fmt: str) -> str:
    mean, low, high = (row.get(f"{metric}_{k}") for k in ("mean", "ci95_low", "ci95_high"))
    if mean is None or mean != mean:
        return ""
    if low is None or low != low:
        return format(mean, fmt)
    return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def render_markdown(
    seeds: Sequence[int], summary: pd.DataFrame, frontier: Sequence[str], rec: Mapping[str, Any]
) -> str:
    """``report.md`` at the top of a multi-seed run."""
    lines = [
        "# edge-opt multi-seed report",
        "",
        f"Seeds {', '.join(str(s) for s in seeds)}; each seed's full run and report is in "
        "`seed_<s>/`.",
        "",
        "## Verdict",
        "",
        f"**Recommended: `{rec['candidate_id']}`**"
        if rec[C.candidate_id]
        else "**No recommendation.**",
        "",
        rec["reason"],
        "",
        "Per seed: "
        + ", ".join(f"seed {s}: `{p}`" for s, p in zip(seeds, rec["per_seed"], strict=True)),
        "",
        f"Frontier over seed means (accepted under every seed): {', '.join(frontier) or '(empty)'}",
        "",
        "## Candidates (mean [Student-t 95% CI] over seeds)",
        "",
        "| candidate | accuracy | p50 ms | size MB | accepted share |",
        "|---|---|---|---|---|",
    ]
    for _, row in summary.iterrows():
        lines.append(
            f"| {row['candidate_id']} | {_ci(row, 'accuracy', '.4f')} | "
            f"{_ci(row, 'latency_p50_ms', '.4g')} | {_ci(row, 'memory_mb', '.4g')} | "
            f"{row['accepted_share']:.2f} |"
        )
    lines += [
        "",
        "Files: `multi_seed_summary.csv`, `multi_seed_frontier_latency.csv`, "
        "`multi_seed_summary.json`.",
        "",
    ]
    return "\n".join(lines)


def render_html(
    seeds: Sequence[int], summary: pd.DataFrame, frontier: Sequence[str], rec: Mapping[str, Any]
) -> str:
    """``report.html`` at the top of a multi-seed run (self-contained, no requests)."""
    records = summary.to_dict("records")
    for row in records:
        row["accuracy_ci"] = _ci(row, "accuracy", ".4f")
        row["p50_ci"] = _ci(row, C.latency_p50_ms, ".4g")
        row["on_frontier"] = row[C.candidate_id] in frontier
    columns = [
        Column(C.candidate_id, "candidate"),
        Column("accuracy_mean", "accuracy mean", ".4f"),
        Column("accuracy_ci", "accuracy [95% CI]"),
        Column("latency_p50_ms_mean", "p50 ms mean", ".4g"),
        Column("p50_ci", "p50 ms [95% CI]"),
        Column("memory_mb_mean", "size MB", ".4g"),
        Column("accepted_share", "accepted share", ".2f"),
        Column("seeds_ok", "seeds ok", "g"),
    ]
    attrs = [
        {
            "data-id": str(r[C.candidate_id]),
            "class": "recommended" if r[C.candidate_id] == rec[C.candidate_id] else "",
        }
        for r in records
    ]
    pick = rec[C.candidate_id]
    per_seed = [f"seed {s}: {p}" for s, p in zip(seeds, rec["per_seed"], strict=True)]
    body = (
        "<header><h1>edge-opt multi-seed report</h1>"
        f'<p class="meta">Seeds {esc(", ".join(str(s) for s in seeds))}; each seed\'s full '
        "report is <code>seed_&lt;s&gt;/report.html</code>.</p></header>"
        f'<section id="verdict" class="verdict{"" if pick else " none"}"><div class="pick">'
        + (f'Recommended: <span class="mono">{esc(pick)}</span>' if pick else "No recommendation")
        + f'</div><div class="why">{esc(rec["reason"])}</div></section>'
        f"<h2>Each seed's own pick</h2>{bullet_list(per_seed)}"
        f'<h2>Candidates over seeds</h2><p class="note">Frontier over seed means: '
        f"{esc(', '.join(frontier) or '(empty)')}.</p>"
        + table("candidates", columns, records, attrs)
    )
    data = {
        "kind": "edge-opt multi-seed report",
        "seeds": list(seeds),
        "recommendation": dict(rec),
        "candidates": records,
    }
    return page(f"edge-opt multi-seed report: {pick or 'no recommendation'}", body, data)


def write_multi_seed_reports(
    out: Path,
    seeds: Sequence[int],
    runs: Sequence[RunResult],
    summary: pd.DataFrame,
    frontier: pd.DataFrame,
    rec: Mapping[str, Any],
) -> list[Path]:
    """The top-level files of a multi-seed run: summary CSV and JSON, the frontier over seed
    means, report.md and report.html."""
    front_ids = frontier[C.candidate_id].tolist() if not frontier.empty else []
    payload = {
        "seeds": list(seeds),
        "runs": [f"seed_{s}" for s in seeds],
        "baseline_val_accuracy": [r.baseline["val_accuracy"] for r in runs],
        "recommended_per_seed": [r.recommendation[C.candidate_id] for r in runs],
        "frontier_latency": front_ids,
        "ci_method": "Student-t 95% interval over seeds (NaN with one seed)",
        "recommended": rec[C.candidate_id],
        "recommended_reason": rec["reason"],
    }
    return [
        atomic_write_csv(out / "multi_seed_summary.csv", summary),
        atomic_write_csv(out / "multi_seed_frontier_latency.csv", frontier),
        atomic_write_json(out / "multi_seed_summary.json", payload),
        atomic_write_text(out / "report.md", render_markdown(seeds, summary, front_ids, rec)),
        atomic_write_text(out / "report.html", render_html(seeds, summary, front_ids, rec)),
    ]
