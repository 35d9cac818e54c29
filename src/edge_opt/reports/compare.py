"""``edge-opt compare``: two or more finished runs side by side.

The first run is the reference; every other run is compared with it. Candidates are matched by
id. For each match: the accuracy delta with a 95% CI (Newcombe's method on the two Wilson
intervals the rows carry) and the p50 delta and ratio with 95% CIs (the two p50 bootstrap
intervals combined the same way, the ratio on a log scale). The candidates' p50 and accuracy
rankings are compared with Kendall's tau-b, and the page says whether the recommendation
changed and what changed with it. Only JSON is read (``run_result.json``); nothing unpickled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge_opt.candidates.columns import C
from edge_opt.errors import EdgeOptError
from edge_opt.reports.result import RunResult

OUTPUT_FILES = ("comparison.md", "comparison.html")
# Config keys that never change what a run measures.
_IGNORED_KEYS = {"output_dir", "refresh_host_profile"}


class CompareError(EdgeOptError, ValueError):
    """The runs cannot be compared as asked (the message names the argument and the fix)."""


@dataclass(frozen=True)
class Delta:
    """One candidate present in both runs."""

    candidate_id: str
    accuracy_a: float | None
    accuracy_b: float | None
    accuracy_delta: float | None
    accuracy_delta_ci95: tuple[float, float] | None
    p50_a_ms: float | None
    p50_b_ms: float | None
    p50_delta_ms: float | None
    p50_delta_ci95_ms: tuple[float, float] | None
    p50_ratio: float | None
    p50_ratio_ci95: tuple[float, float] | None
    status_a: str
    status_b: str
    accepted_a: bool
    accepted_b: bool

    @property
    def p50_changed(self) -> bool:
        """Whether the p50 moved beyond its 95% CI (the delta's CI excludes 0)."""
        ci = self.p50_delta_ci95_ms
        return ci is not None and (ci[0] > 0 or ci[1] < 0)

    @property
    def accuracy_changed(self) -> bool:
        ci = self.accuracy_delta_ci95
        return ci is not None and (ci[0] > 0 or ci[1] < 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "p50_changed": self.p50_changed,
            "accuracy_changed": self.accuracy_changed,
        }


@dataclass(frozen=True)
class PairComparison:
    """Run ``b`` against the reference run ``a``."""

    run_a: str
    run_b: str
    deltas: list[Delta]
    only_in_a: list[str]
    only_in_b: list[str]
    kendall_tau_p50: float | None
    kendall_tau_accuracy: float | None
    rank_pairs: int
    recommended_a: str | None
    recommended_b: str | None
    recommendation_changed: bool
    why: list[str]
    config_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    environment_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["deltas"] = [d.to_dict() for d in self.deltas]
        return data


@dataclass(frozen=True)
class Comparison:
    runs: list[str]
    pairs: list[PairComparison]

    def to_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "pairs": [p.to_dict() for p in self.pairs]}


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b of two paired sequences (ties handled); None with < 2 pairs or when
    one side is constant."""
    n = len(x)
    if n != len(y):
        raise ValueError(f"kendall_tau_b: {n} x values but {len(y)} y values")
    concordant = discordant = ties_x = ties_y = 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif (dx > 0) == (dy > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = math.sqrt((concordant + discordant + ties_x) * (concordant + discordant + ties_y))
    if n < 2 or denominator == 0:
        return None
    return (concordant - discordant) / denominator


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def difference_ci(
    a: float, a_low: float, a_high: float, b: float, b_low: float, b_high: float
) -> tuple[float, float]:
    """95% CI of b - a from each estimate's own 95% CI (Newcombe's hybrid: the square-root
    of the summed squared half-widths on each side; asymmetric intervals stay asymmetric)."""
    d = b - a
    low = d - math.sqrt((b - b_low) ** 2 + (a_high - a) ** 2)
    high = d + math.sqrt((b_high - b) ** 2 + (a - a_low) ** 2)
    return low, high


def _delta(cid: str, a: Mapping[str, Any], b: Mapping[str, Any]) -> Delta:
    acc = [
        _num(r.get(k))
        for r in (a, b)
        for k in ("accuracy", C.accuracy_ci95_low, C.accuracy_ci95_high)
    ]
    p50 = [
        _num(r.get(k))
        for r in (a, b)
        for k in (C.latency_p50_ms, C.latency_p50_ci95_low_ms, C.latency_p50_ci95_high_ms)
    ]
    acc_delta = acc_ci = p50_delta = p50_ci = ratio = ratio_ci = None
    if acc[0] is not None and acc[3] is not None:
        acc_delta = acc[3] - acc[0]
        if None not in acc:
            acc_ci = difference_ci(*acc)  # type: ignore[arg-type]
    if p50[0] is not None and p50[3] is not None:
        p50_delta = p50[3] - p50[0]
        ratio = p50[3] / p50[0] if p50[0] > 0 else None
        if None not in p50:
            p50_ci = difference_ci(*p50)  # type: ignore[arg-type]
            if all(v > 0 for v in p50):  # type: ignore[operator]
                logs = [math.log(v) for v in p50]  # type: ignore[arg-type]
                low, high = difference_ci(*logs)
                ratio_ci = (math.exp(low), math.exp(high))
    return Delta(
        candidate_id=cid,
        accuracy_a=acc[0],
        accuracy_b=acc[3],
        accuracy_delta=acc_delta,
        accuracy_delta_ci95=acc_ci,
        p50_a_ms=p50[0],
        p50_b_ms=p50[3],
        p50_delta_ms=p50_delta,
        p50_delta_ci95_ms=p50_ci,
        p50_ratio=ratio,
        p50_ratio_ci95=ratio_ci,
        status_a=str(a.get(C.status)),
        status_b=str(b.get(C.status)),
        accepted_a=bool(a.get(C.accepted)),
        accepted_b=bool(b.get(C.accepted)),
    )


def _changes(a: Mapping[str, Any], b: Mapping[str, Any], ignore: set[str]) -> dict[str, Any]:
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k), b.get(k)) for k in keys if k not in ignore and a.get(k) != b.get(k)}


def _environment_facts(env: Mapping[str, Any]) -> dict[str, Any]:
    cpu = env.get("cpu", {}) or {}
    packages = env.get("packages", {}) or {}
    return {
        "cpu": cpu.get("model"),
        "logical_cpus": cpu.get("logical_cpus"),
        "edge_opt": env.get("edge_opt_version"),
        "git_commit": (env.get("git") or {}).get("commit"),
        **{f"package {k}": v for k, v in packages.items()},
        "quantized_engine": env.get("quantized_engine"),
    }


def _why(
    a: RunResult,
    b: RunResult,
    rows_a: dict[str, Any],
    rows_b: dict[str, Any],
    deltas: dict[str, Delta],
    config_changes: dict[str, Any],
) -> list[str]:
    """Sentences on why the recommendation changed (or why it held)."""
    rec_a, rec_b = a.recommendation.get(C.candidate_id), b.recommendation.get(C.candidate_id)
    reasons = []
    if rec_a == rec_b:
        reasons.append(f"both runs recommend {rec_a}" if rec_a else "neither run recommends")
        return reasons
    if rec_a is not None:
        held_back = _not_pickable(rec_a, rows_b.get(rec_a), b, "second")
        reasons.append(
            held_back or f"{rec_a} (first run's pick) is still eligible in the second run"
        )
    if rec_b is not None:
        held_back = _not_pickable(rec_b, rows_a.get(rec_b), a, "first")
        if held_back is not None:  # why the first run could not pick what the second did
            reasons.append(held_back)
    if rec_a is not None and rec_b is not None and rec_a in rows_b and rec_b in rows_b:
        row_a, row_b = rows_b[rec_a], rows_b[rec_b]
        p_a, p_b = _num(row_a.get(C.latency_p50_ms)), _num(row_b.get(C.latency_p50_ms))
        if p_a is not None and p_b is not None:
            noise = (
                "their 95% CIs overlap: within timing noise"
                if _cis_overlap(row_a, row_b)
                else "beyond both 95% CIs"
            )
            reasons.append(
                f"in the second run {rec_b} has p50 {p_b:.4g} ms and {rec_a} {p_a:.4g} ms ({noise})"
            )
        if rec_b in rows_a:
            first = (
                _num(rows_a[rec_b].get(C.latency_p50_ms)),
                _num(rows_a[rec_a].get(C.latency_p50_ms)),
            )
            if None not in first:
                reasons.append(
                    f"in the first run {rec_b} had p50 {first[0]:.4g} ms and {rec_a} "
                    f"{first[1]:.4g} ms"
                )
    if rec_b is None:
        reasons.append(f"second run: {b.recommendation.get('reason')}")
    if config_changes:
        reasons.append("config keys that differ: " + ", ".join(sorted(config_changes)))
    return reasons


def _not_pickable(
    cid: str, row: Mapping[str, Any] | None, run: RunResult, which: str
) -> str | None:
    """Why ``cid`` could not be ``run``'s pick (None: it could): absent, not measured,
    rejected by a budget, or below the accuracy floor."""
    if row is None:
        return f"{cid} is not a candidate of the {which} run"
    if row.get(C.status) != "ok":
        return f"{cid} was {row.get(C.status)} in the {which} run: {row.get('error')}"
    if not bool(row.get(C.accepted)):
        return f"{cid} is rejected in the {which} run ({_budget_broken(row, run)})"
    floor = _num(run.recommendation.get("baseline_accuracy"))
    drop = _num(run.recommendation.get("max_accuracy_drop")) or 0.0
    acc = _num(row.get(C.accuracy))
    if floor is not None and acc is not None and acc < floor - drop - 1e-12:
        return (
            f"{cid}'s validation accuracy {acc:.4f} is below the {which} run's floor "
            f"{floor - drop:.4f} (its baseline's validation accuracy {floor:.4f} minus "
            f"max_accuracy_drop {drop:g})"
        )
    return None


def _budget_broken(row: Mapping[str, Any], run: RunResult) -> str:
    """Which budget a rejected row breaks, from its own figures and the run's config."""
    budget_mb = _num(row.get("active_budget_mb"))
    metric = "runtime_memory_mb" if row.get("budget_metric") == "runtime" else C.memory_mb
    size = _num(row.get(metric))
    if budget_mb is not None and size is not None and size > budget_mb:
        return f"{size:.4g} MB, over the {budget_mb:g} MB memory budget"
    latency_budget = _num(run.config.get("latency_budget_ms"))
    figure = _num(row.get("latency_budget_figure"))
    if row.get("violates_latency_budget") and latency_budget is not None and figure is not None:
        whose = row.get("latency_budget_on") or "this host"
        return f"p95 {figure:.4g} ms on {whose}, over the {latency_budget:g} ms latency budget"
    return "over a budget"


def _cis_overlap(x: Mapping[str, Any], y: Mapping[str, Any]) -> bool:
    lows = [_num(r.get(C.latency_p50_ci95_low_ms)) for r in (x, y)]
    highs = [_num(r.get(C.latency_p50_ci95_high_ms)) for r in (x, y)]
    if None in lows or None in highs:
        return False
    return lows[0] <= highs[1] and lows[1] <= highs[0]  # type: ignore[operator]


def compare_pair(a: RunResult, b: RunResult, name_a: str, name_b: str) -> PairComparison:
    """Run ``b`` against the reference ``a``."""
    rows_a = {str(r[C.candidate_id]): r for r in a.sweep}
    rows_b = {str(r[C.candidate_id]): r for r in b.sweep}
    common = [cid for cid in rows_a if cid in rows_b]
    deltas = {cid: _delta(cid, rows_a[cid], rows_b[cid]) for cid in common}
    timed = [d for d in deltas.values() if d.p50_a_ms is not None and d.p50_b_ms is not None]
    both_acc = [d for d in deltas.values() if d.accuracy_a is not None and d.accuracy_b is not None]
    tau_p50 = kendall_tau_b([d.p50_a_ms for d in timed], [d.p50_b_ms for d in timed])  # type: ignore[misc]
    tau_acc = kendall_tau_b(
        [d.accuracy_a for d in both_acc],
        [d.accuracy_b for d in both_acc],  # type: ignore[misc]
    )
    config_changes = _changes(a.config, b.config, _IGNORED_KEYS)
    rec_a, rec_b = a.recommendation.get(C.candidate_id), b.recommendation.get(C.candidate_id)
    return PairComparison(
        run_a=name_a,
        run_b=name_b,
        deltas=list(deltas.values()),
        only_in_a=[cid for cid in rows_a if cid not in rows_b],
        only_in_b=[cid for cid in rows_b if cid not in rows_a],
        kendall_tau_p50=tau_p50,
        kendall_tau_accuracy=tau_acc,
        rank_pairs=len(timed),
        recommended_a=rec_a,
        recommended_b=rec_b,
        recommendation_changed=rec_a != rec_b,
        why=_why(a, b, rows_a, rows_b, deltas, config_changes),
        config_changes=config_changes,
        environment_changes=_changes(
            _environment_facts(a.environment), _environment_facts(b.environment), set()
        ),
    )


def require_run_dir(path: str | Path) -> Path:
    """``path`` if it holds a finished run's results.

    Raises:
        EdgeOptError: not a directory, or not a finished run (the message says why).
    """
    from edge_opt.infra.runstatus import require_finished_run

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise CompareError(
            f"RUN_DIR: {str(path)!r} is not a directory; pass the output directories of "
            "finished runs"
        )
    require_finished_run(run_dir)
    return run_dir


def compare_runs(run_dirs: Sequence[str | Path]) -> Comparison:
    """Compare every run with the first one.

    Args:
        run_dirs: two or more finished runs' output directories.

    Returns:
        One ``PairComparison`` per run after the first.

    Raises:
        CompareError: fewer than two runs, or the same directory twice.
        EdgeOptError: a directory is not a finished run (the message names it).

    Example:
        >>> comparison = compare_runs(["outputs/before", "outputs/after"])  # doctest: +SKIP
        >>> comparison.pairs[0].kendall_tau_p50  # doctest: +SKIP
    """
    if len(run_dirs) < 2:
        raise CompareError(
            f"RUN_DIR: got {len(run_dirs)} run directory; compare needs at least two "
            "(edge-opt compare RUN_A RUN_B)"
        )
    resolved = [Path(p).resolve() for p in run_dirs]
    for i, path in enumerate(resolved):
        if path in resolved[:i]:
            raise CompareError(f"RUN_DIR: {str(run_dirs[i])!r} is given twice; pass different runs")
    checked = [require_run_dir(p) for p in run_dirs]  # every directory before any file
    results = [RunResult.load_run(p) for p in checked]  # each checked against its manifest
    names = [str(p) for p in run_dirs]
    pairs = [
        compare_pair(results[0], r, names[0], n)
        for r, n in zip(results[1:], names[1:], strict=True)
    ]
    return Comparison(names, pairs)


def check_comparison_output(
    output: str | Path, run_dirs: Sequence[str | Path], overwrite: bool = False
) -> Path:
    """Where the comparison files may go; the absolute directory.

    Refused: a path under /proc, /sys or /dev, an existing file, a directory inside (or
    holding) a compared run, and, without ``overwrite``, a directory that already has
    ``comparison.md`` or ``comparison.html``.

    Raises:
        CompareError: the message names ``--output``, the value and the fix.
    """
    from edge_opt.infra.runstatus import FORBIDDEN_ROOTS, LEGACY_MARKERS

    text = str(output)
    if not text.strip():
        raise CompareError("--output: '' is not a directory; give one, e.g. --output compare1")
    target = Path(text).resolve()
    for root in FORBIDDEN_ROOTS:
        if target == root or root in target.parents:
            raise CompareError(
                f"--output: {text!r} is under {root}, a kernel file system; choose a directory "
                "on disk, e.g. --output compare1"
            )
    if target.exists() and not target.is_dir():
        raise CompareError(f"--output: {text!r} exists and is not a directory; give a directory")
    for run in run_dirs:
        run_path = Path(run).resolve()
        if target == run_path or run_path in target.parents:
            raise CompareError(
                f"--output: {text!r} is inside the compared run {str(run)!r}; a comparison "
                "never writes into a run: give another directory, e.g. --output compare1"
            )
    # Any other run (e.g. a multi-seed run holding per-seed ones): a folder that merely holds
    # runs, like outputs/ or the current directory, is fine.
    for folder in (target, *target.parents):
        if any((folder / marker).is_file() for marker in LEGACY_MARKERS):
            raise CompareError(
                f"--output: {text!r} is {'' if folder == target else 'inside '}the run "
                f"directory {str(folder)!r}; a comparison never writes into a run: give "
                "another directory, e.g. --output compare1"
            )
    existing = [name for name in OUTPUT_FILES if (target / name).exists()]
    if existing and not overwrite:
        raise CompareError(
            f"--output: {text!r} already holds {', '.join(existing)}; pass --overwrite to "
            "replace it or choose another directory with --output DIR"
        )
    return target
