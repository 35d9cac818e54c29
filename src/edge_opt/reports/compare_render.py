"""Markdown and HTML of a ``Comparison``, and writing them (computing is in ``compare``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge_opt.candidates.columns import C
from edge_opt.infra.artifacts import atomic_write_text
from edge_opt.reports.compare import Comparison, Delta, PairComparison, check_comparison_output
from edge_opt.reports.page import Column, bullet_list, esc, key_values, page, table


def _f(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def _ci(ci: tuple[float, float] | None, fmt: str) -> str:
    return "" if ci is None else f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _signed(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, "+" + fmt)


def _tau(value: float | None) -> str:
    return "n/a (fewer than 2 comparable candidates)" if value is None else f"{value:.3f}"


def _verdict_line(pair: PairComparison) -> str:
    if pair.recommendation_changed:
        return (
            f"Recommendation CHANGED: {pair.recommended_a or 'none'} -> "
            f"{pair.recommended_b or 'none'}"
        )
    return f"Recommendation unchanged: {pair.recommended_a or 'none'}"


def delta_rows(pair: PairComparison) -> list[dict[str, Any]]:
    """One flat row per matched candidate (the tables of both formats)."""
    rows = []
    for d in pair.deltas:
        rows.append(
            {
                C.candidate_id: d.candidate_id,
                "status": d.status_a
                if d.status_a == d.status_b
                else f"{d.status_a} -> {d.status_b}",
                "verdict": _accept(d),
                "accuracy_a": d.accuracy_a,
                "accuracy_b": d.accuracy_b,
                "accuracy_delta": d.accuracy_delta,
                "accuracy_delta_ci": _ci(d.accuracy_delta_ci95, "+.4f"),
                "p50_a_ms": d.p50_a_ms,
                "p50_b_ms": d.p50_b_ms,
                "p50_delta_ms": d.p50_delta_ms,
                "p50_delta_ci": _ci(d.p50_delta_ci95_ms, "+.4g"),
                "p50_ratio": d.p50_ratio,
                "p50_ratio_ci": _ci(d.p50_ratio_ci95, ".3f"),
                "beyond_ci": ", ".join(
                    n
                    for n, moved in (("p50", d.p50_changed), ("accuracy", d.accuracy_changed))
                    if moved
                ),
            }
        )
    return rows


def _accept(d: Delta) -> str:
    """accepted / rejected per run; a row that was not measured shows its status (skipped,
    failed), never "rejected"."""
    word = {True: "accepted", False: "rejected"}
    a = word[d.accepted_a] if d.status_a == "ok" else d.status_a
    b = word[d.accepted_b] if d.status_b == "ok" else d.status_b
    return a if a == b else f"{a} -> {b}"


def _pair_markdown(pair: PairComparison) -> list[str]:
    lines = [
        f"## `{pair.run_b}` vs `{pair.run_a}`",
        "",
        f"**{_verdict_line(pair)}**",
        "",
    ]
    lines += [f"- {w}" for w in pair.why]
    lines += [
        "",
        f"Rank agreement over {pair.rank_pairs} candidates timed in both: Kendall tau-b of p50 "
        f"{_tau(pair.kendall_tau_p50)}, of accuracy {_tau(pair.kendall_tau_accuracy)} "
        "(1 = same order).",
        "",
        "Deltas are second minus first; CIs are 95%. `p50 x` is the second p50 over the first.",
        "",
        "| candidate | status | verdict | acc first | acc second | acc delta [CI] | p50 first ms "
        "| p50 second ms | p50 delta ms [CI] | p50 x [CI] | moved beyond CI |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in delta_rows(pair):
        lines.append(
            f"| {r['candidate_id']} | {r['status']} | {r['verdict']} | "
            f"{_f(r['accuracy_a'], '.4f')} | {_f(r['accuracy_b'], '.4f')} | "
            f"{_signed(r['accuracy_delta'], '.4f')} {r['accuracy_delta_ci']} | "
            f"{_f(r['p50_a_ms'], '.4g')} | {_f(r['p50_b_ms'], '.4g')} | "
            f"{_signed(r['p50_delta_ms'], '.4g')} {r['p50_delta_ci']} | "
            f"{_f(r['p50_ratio'], '.3f')} {r['p50_ratio_ci']} | {r['beyond_ci'] or '-'} |"
        )
    lines.append("")
    if pair.only_in_a or pair.only_in_b:
        lines += [
            f"Only in the first run: {', '.join(pair.only_in_a) or '-'}; only in the second: "
            f"{', '.join(pair.only_in_b) or '-'}.",
            "",
        ]
    if pair.config_changes:
        lines += ["Config differences (first -> second):", ""]
        lines += [f"- `{k}`: {a!r} -> {b!r}" for k, (a, b) in pair.config_changes.items()]
        lines.append("")
    if pair.environment_changes:
        lines += ["Environment differences (first -> second):", ""]
        lines += [f"- {k}: {a} -> {b}" for k, (a, b) in pair.environment_changes.items()]
        lines.append("")
    else:
        lines += ["Same CPU model, packages and edge-opt commit in both runs.", ""]
    return lines


def render_markdown(comparison: Comparison) -> str:
    """``comparison.md`` (also what ``edge-opt compare`` prints)."""
    lines = [
        "# edge-opt comparison",
        "",
        f"Reference (first) run: `{comparison.runs[0]}`; compared: "
        + ", ".join(f"`{r}`" for r in comparison.runs[1:])
        + ". Candidates are matched by id. Timings from different runs (or machines) differ "
        "by the host's speed too: read ratios and rank agreement before absolute deltas.",
        "",
    ]
    for pair in comparison.pairs:
        lines += _pair_markdown(pair)
    return "\n".join(lines)


COLUMNS = [
    Column(C.candidate_id, "candidate"),
    Column("status", "status"),
    Column("verdict", "verdict"),
    Column("accuracy_a", "acc first", ".4f"),
    Column("accuracy_b", "acc second", ".4f"),
    Column("accuracy_delta", "acc delta", "+.4f"),
    Column("accuracy_delta_ci", "acc delta 95% CI"),
    Column("p50_a_ms", "p50 first ms", ".4g"),
    Column("p50_b_ms", "p50 second ms", ".4g"),
    Column("p50_delta_ms", "p50 delta ms", "+.4g"),
    Column("p50_delta_ci", "p50 delta 95% CI"),
    Column("p50_ratio", "p50 x", ".3f", "second p50 / first p50"),
    Column("p50_ratio_ci", "p50 x 95% CI"),
    Column("beyond_ci", "moved beyond CI"),
]


def _pair_html(index: int, pair: PairComparison) -> str:
    changed = pair.recommendation_changed
    facts = [
        ("Kendall tau-b, p50", _tau(pair.kendall_tau_p50)),
        ("Kendall tau-b, accuracy", _tau(pair.kendall_tau_accuracy)),
        ("candidates timed in both", pair.rank_pairs),
        ("only in the first run", ", ".join(pair.only_in_a) or "-"),
        ("only in the second run", ", ".join(pair.only_in_b) or "-"),
    ]
    config = [(k, f"{a!r} -> {b!r}") for k, (a, b) in pair.config_changes.items()]
    env = [(k, f"{a} -> {b}") for k, (a, b) in pair.environment_changes.items()]
    rows = delta_rows(pair)
    attrs = [{"data-id": str(r[C.candidate_id])} for r in rows]
    return (
        f'<section><h2><span class="mono">{esc(pair.run_b)}</span> vs '
        f'<span class="mono">{esc(pair.run_a)}</span></h2>'
        f'<div class="verdict{" none" if changed else ""}"><div class="pick">'
        f"{esc(_verdict_line(pair))}</div>{bullet_list(pair.why)}</div>"
        f"{key_values(facts)}"
        '<p class="note">Deltas are second minus first, with 95% CIs; "moved beyond CI" '
        "when the delta's CI excludes 0.</p>"
        f"{table(f'deltas-{index}', COLUMNS, rows, attrs)}"
        f"<h3>Config differences</h3>{key_values(config) if config else '<p>none</p>'}"
        f"<h3>Environment differences</h3>{key_values(env) if env else '<p>none</p>'}"
        "</section>"
    )


def render_html(comparison: Comparison) -> str:
    """``comparison.html``: self-contained, sortable tables, no requests."""
    body = (
        "<header><h1>edge-opt comparison</h1>"
        f'<p class="meta">Reference run <span class="mono">{esc(comparison.runs[0])}</span>; '
        "candidates matched by id.</p></header>"
        + "".join(_pair_html(i, p) for i, p in enumerate(comparison.pairs))
    )
    return page(
        "edge-opt comparison", body, {"kind": "edge-opt comparison", **comparison.to_dict()}
    )


def write_comparison(
    comparison: Comparison, output: str | Path, overwrite: bool = False
) -> tuple[list[Path], str]:
    """Write ``comparison.md`` and ``comparison.html`` into ``output``.

    Returns:
        The files written, and the Markdown text (what the CLI prints).

    Raises:
        CompareError: ``output`` is refused (see ``check_comparison_output``).
    """
    target = check_comparison_output(output, comparison.runs, overwrite)
    target.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(comparison)
    paths = [
        atomic_write_text(target / "comparison.md", markdown),
        atomic_write_text(target / "comparison.html", render_html(comparison)),
    ]
    return paths, markdown
