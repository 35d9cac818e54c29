"""edge-opt compare: matching, deltas with CIs, Kendall tau, the changed pick, refusals."""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edge_opt.cli.options import app
from edge_opt.reports.compare import compare_runs, difference_ci, kendall_tau_b


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


def test_kendall_tau_b_known_values_and_ties() -> None:
    assert kendall_tau_b([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau_b([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # One tie in x: C=2, D=0, tau_b = 2 / sqrt(3 * 2).
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert kendall_tau_b([1.0], [2.0]) is None
    assert kendall_tau_b([1, 1, 1], [1, 2, 3]) is None  # a constant ranking has no order


def test_kendall_tau_b_matches_scipy_with_ties() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(3)
    x = [rng.randint(0, 5) for _ in range(30)]
    y = [v + rng.randint(-2, 2) for v in x]
    assert kendall_tau_b(x, y) == pytest.approx(stats.kendalltau(x, y).statistic)


def test_difference_ci_combines_both_intervals() -> None:
    low, high = difference_ci(1.0, 0.9, 1.1, 2.0, 1.7, 2.4)
    # b - a = 1; lower: sqrt(0.3^2 + 0.1^2), upper: sqrt(0.4^2 + 0.1^2).
    assert low == pytest.approx(1.0 - math.sqrt(0.1))
    assert high == pytest.approx(1.0 + math.sqrt(0.17))


def _edited_copy(run: Path, dest: Path) -> tuple[Path, str, str]:
    """A copy of ``run`` whose recommended candidate is over budget and 1.5x slower there."""
    shutil.copytree(run, dest)
    data = json.loads((dest / "run_result.json").read_text())
    old = data["recommendation"]["candidate_id"]
    others = [r for r in data["sweep"] if r["status"] == "ok" and r["candidate_id"] != old]
    new = others[0]["candidate_id"]
    for row in data["sweep"]:
        if row["candidate_id"] == old:
            row["accepted"] = False
            for key in ("latency_p50_ms", "latency_p50_ci95_low_ms", "latency_p50_ci95_high_ms"):
                row[key] *= 1.5
    data["recommendation"]["candidate_id"] = new
    (dest / "run_result.json").write_text(json.dumps(data))
    reseal(dest)
    return dest, old, new


def reseal(run: Path) -> None:
    """Record run_result.json's new sha256 in the manifest, as a run that wrote it would (an
    edit the manifest does not know is refused: tests/infra/test_run_trust.py)."""
    path = run / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {"files": {}}
    digest = hashlib.sha256((run / "run_result.json").read_bytes()).hexdigest()
    manifest["files"]["run_result.json"] = digest
    path.write_text(json.dumps(manifest))


@pytest.mark.slow
def test_compare_finds_the_changed_pick_and_why(small_run: Path, tmp_path: Path) -> None:
    other, old, new = _edited_copy(small_run, tmp_path / "after")
    comparison = compare_runs([small_run, other])
    pair = comparison.pairs[0]
    assert pair.recommendation_changed
    assert (pair.recommended_a, pair.recommended_b) == (old, new)
    assert any(w.startswith(f"{old} is rejected in the second run (") for w in pair.why)
    deltas = {d.candidate_id: d for d in pair.deltas}
    assert len(deltas) == len(json.loads((small_run / "run_result.json").read_text())["sweep"])
    moved = deltas[old]
    assert moved.p50_ratio == pytest.approx(1.5)
    assert moved.p50_ratio_ci95[0] < 1.5 < moved.p50_ratio_ci95[1]
    assert moved.accuracy_delta == 0.0
    assert not moved.accuracy_changed
    unchanged = deltas[new]
    assert unchanged.p50_delta_ms == 0.0
    assert not unchanged.p50_changed
    assert pair.kendall_tau_accuracy == pytest.approx(1.0)
    assert pair.only_in_a == pair.only_in_b == []


@pytest.mark.slow
def test_compare_cli_writes_md_and_html_and_prints(small_run: Path, tmp_path: Path) -> None:
    other, old, new = _edited_copy(small_run, tmp_path / "after")
    out = tmp_path / "cmp"
    code, stdout, stderr = invoke("compare", str(small_run), str(other), "--output", str(out))
    assert code == 0, stderr
    assert f"Recommendation CHANGED: {old} -> {new}" in stdout
    assert "Kendall tau-b of p50" in stdout
    assert (out / "comparison.md").read_text().startswith("# edge-opt comparison")
    page = (out / "comparison.html").read_text()
    assert page.count("<tr data-id=") == len(
        json.loads((small_run / "run_result.json").read_text())["sweep"]
    )
    assert "http:" not in page.replace("http://www.w3.org/2000/svg", "")
    # A second compare into the same place is refused unless --overwrite; nothing changes.
    before = (out / "comparison.md").read_bytes()
    code, _, stderr = invoke("compare", str(small_run), str(other), "--output", str(out))
    assert code == 1
    assert "already holds comparison.md, comparison.html; pass --overwrite" in stderr
    assert (out / "comparison.md").read_bytes() == before
    code, _, stderr = invoke("compare", str(small_run), str(other), "-o", str(out), "--overwrite")
    assert code == 0, stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["{run}"], "compare needs at least two (edge-opt compare RUN_A RUN_B)"),
        (["{run}", "{run}"], "is given twice; pass different runs"),
        (
            ["{run}", "{missing}"],
            "is not a directory; pass the output directories of finished runs",
        ),
        (["{run}", "{empty}"], "no run_result.json; pass the output directory of a run"),
        (["{junk}", "{run}"], "not valid JSON"),
        (["{run}", "{empty}", "-o", "{run}/cmp"], "is inside the compared run"),
        (["{run}", "{empty}", "-o", "/proc/cmp"], "is under /proc, a kernel file system"),
        (["{run}", "{empty}", "-o", "{file}"], "exists and is not a directory"),
    ],
    ids=["one-run", "same-twice", "missing", "not-a-run", "corrupt", "into-run", "proc", "file"],
)
def test_compare_refusals_are_one_line(tmp_path: Path, args: list[str], expected: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run_result.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "run_result.json").write_text("{not json")
    reseal(junk)
    (tmp_path / "file").write_text("x")
    names = {
        "run": run,
        "missing": tmp_path / "missing",
        "empty": tmp_path / "empty",
        "junk": junk,
        "file": tmp_path / "file",
    }
    code, _, stderr = (
        invoke("compare", *(a.format(**names) for a in args), "-o", str(tmp_path / "out"))
        if "-o" not in args
        else invoke("compare", *(a.format(**names) for a in args))
    )
    assert code == 1, stderr
    assert expected in stderr
    assert "Traceback" not in stderr
    assert len([line for line in stderr.splitlines() if line.strip()]) == 1, stderr
    assert not (run / "cmp").exists()


@pytest.mark.slow
def test_the_default_output_beside_the_runs_works_and_no_run_is_written_into(
    small_run: Path, tmp_path: Path, monkeypatch
) -> None:
    # The common layout: runs under outputs/, compare run from the folder that holds them
    # (default --output .). Writing there is fine; writing into any run directory is not.
    parent = tmp_path / "outputs"
    first, _, _ = _edited_copy(small_run, parent / "a")
    second, _, _ = _edited_copy(small_run, parent / "b")
    monkeypatch.chdir(parent)
    code, _, stderr = invoke("compare", "a", "b")
    assert code == 0, stderr
    assert (parent / "comparison.md").is_file()
    holder = tmp_path / "multi"  # e.g. a multi-seed run: a run directory holding runs
    holder.mkdir()
    (holder / "run_status.json").write_text("{}")
    code, _, stderr = invoke("compare", "a", "b", "-o", str(holder / "cmp"), "--overwrite")
    assert code == 1
    assert "is inside the run directory" in stderr
    assert not (holder / "cmp").exists()


@pytest.mark.slow
def test_compare_says_the_new_pick_was_below_the_first_runs_floor(
    small_run: Path, tmp_path: Path
) -> None:
    second, _, new = _edited_copy(small_run, tmp_path / "second")
    first = tmp_path / "first"
    shutil.copytree(small_run, first)
    data = json.loads((first / "run_result.json").read_text())
    floor = (
        data["recommendation"]["baseline_accuracy"] - data["recommendation"]["max_accuracy_drop"]
    )
    for row in data["sweep"]:
        if row["candidate_id"] == new:
            row["accuracy"] = floor - 0.01
            row["accepted"] = True  # within the budgets: only the floor holds it back
    (first / "run_result.json").write_text(json.dumps(data))
    reseal(first)
    why = compare_runs([first, second]).pairs[0].why
    assert any(
        w.startswith(f"{new}'s validation accuracy {floor - 0.01:.4f} is below the first run's")
        for w in why
    ), why


def test_a_skipped_row_is_shown_as_skipped_not_rejected() -> None:
    from edge_opt.reports.compare import Delta
    from edge_opt.reports.compare_render import _accept

    delta = Delta("p00-int8-compiled", *([None] * 10), "skipped", "ok", False, True)
    assert _accept(delta) == "skipped -> accepted"
