from __future__ import annotations

import itertools
from types import SimpleNamespace

import pandas as pd
import pytest

import edge_opt.candidates.preparation as tasks
import edge_opt.runtimes.build as runtimes
from edge_opt.candidates.plan import candidate_id
from edge_opt.decide.frontier import pareto_frontier
from edge_opt.decide.recommend import recommend_candidate
from edge_opt.errors import QuantizationError
from edge_opt.orchestrate.sweep import run_sweep


def frame(points: list[tuple[float, float, bool]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "candidate_id": f"c{i}",
                "latency_p50_ms": x,
                "accuracy": a,
                "accepted": ok,
                "status": "ok",
                "memory_mb": 0.01,
                "active_budget_mb": 0.03,
            }
            for i, (x, a, ok) in enumerate(points)
        ]
    )


POINTS = [
    (1.0, 0.80, True),
    (2.0, 0.85, True),
    (1.5, 0.82, False),
    (3.0, 0.84, True),
    (0.5, 0.70, True),
    (2.0, 0.86, True),
    (4.0, 0.90, True),
    (0.5, 0.75, True),
]


def dominated(row: pd.Series, others: pd.DataFrame) -> bool:
    better = others[
        (others["latency_p50_ms"] <= row["latency_p50_ms"])
        & (others["accuracy"] >= row["accuracy"])
        & (
            (others["latency_p50_ms"] < row["latency_p50_ms"])
            | (others["accuracy"] > row["accuracy"])
        )
    ]
    return not better.empty


def test_frontier_keeps_exactly_the_non_dominated_accepted_points() -> None:
    df = frame(POINTS)
    front = pareto_frontier(df, "latency_p50_ms")
    accepted = df[df["accepted"]]
    assert front["accepted"].all()
    assert not any(dominated(r, accepted) for _, r in front.iterrows())
    kept = set(front["candidate_id"])
    missing = [
        r["candidate_id"]
        for _, r in accepted.iterrows()
        if r["candidate_id"] not in kept and not dominated(r, accepted)
    ]
    assert missing == []
    assert list(front["candidate_id"]) == ["c7", "c0", "c5", "c6"]
    assert front["latency_p50_ms"].is_monotonic_increasing
    assert front["accuracy"].is_monotonic_increasing


def test_frontier_is_empty_with_headers_when_nothing_is_accepted() -> None:
    df = frame([(1.0, 0.9, False), (2.0, 0.95, False)])
    front = pareto_frontier(df, "latency_p50_ms")
    assert front.empty
    assert list(front.columns) == list(df.columns)


def test_frontier_ignores_failed_rows_and_can_use_the_ci_bound() -> None:
    df = frame([(1.0, 0.80, True), (2.0, 0.82, True)])
    df["accuracy_ci95_low"] = [0.78, 0.77]
    assert list(pareto_frontier(df, "latency_p50_ms", use_ci=True)["candidate_id"]) == ["c0"]
    df.loc[0, "status"] = "failed"
    assert list(pareto_frontier(df, "latency_p50_ms")["candidate_id"]) == ["c1"]


def test_recommendation_picks_lowest_latency_within_the_drop() -> None:
    df = frame(POINTS)
    rec = recommend_candidate(df, baseline_accuracy=0.86, max_accuracy_drop=0.02)
    # Eligible (>= 0.84): c1 0.85 @ 2.0, c3 0.84 @ 3.0, c5 0.86 @ 2.0, c6 0.90 @ 4.0.
    # c1 and c5 tie on latency; the more accurate one wins.
    assert rec.candidate_id == "c5"
    assert rec.reason.startswith("lowest latency_p50_ms (2) among 4 accepted candidate(s)")


def test_recommendation_null_reasons() -> None:
    rec = recommend_candidate(frame([(1.0, 0.9, False)]), 0.9, 0.01)
    assert rec.candidate_id is None
    assert rec.reason == (
        "no candidate was accepted: none of the 1 measured candidates fits "
        "the active memory budget of 0.03 MB"
    )
    rec = recommend_candidate(frame([(1.0, 0.5, True)]), 0.9, 0.01)
    assert rec.candidate_id is None
    assert "none is within 0.01 of the baseline's validation accuracy 0.9000" in rec.reason


def test_candidate_ids_are_stable_and_unique() -> None:
    ids = [
        candidate_id(level, p)
        for level, p in itertools.product(
            [0.0, 0.25, 0.5, 0.7, 0.33], ["fp32", "fp16", "bf16", "int8"]
        )
    ]
    assert len(set(ids)) == len(ids)
    assert candidate_id(0.25, "int8") == "p25-int8-eager"
    assert candidate_id(0.0, "fp32") == "p00-fp32-eager"


def sweep_kwargs(trained_cnn, loaders, calibration, tmp_path, **extra):
    kwargs = {
        "base_model": trained_cnn,
        "train_loader": loaders.train,
        "val_loader": loaders.val,
        "calibration_loader": calibration,
        "device": "cpu",
        "pruning_levels": [0.0, 0.5],
        "precisions": ["fp32", "int8"],
        "power_watts": 5.0,
        "calibration_batches": 2,
        "memory_budgets_mb": [0.03125, 1.0],
        "active_memory_budget_mb": 0.03125,
        "benchmark_repeats": 5,
        "benchmark_trials": 1,
        "benchmark_warmup": 1,
        "output_dir": tmp_path,
        "test_loader": loaders.test,
        "throughput_repeats": 2,
        "measure_rss": False,
    }
    kwargs.update(extra)
    return kwargs


def test_sweep_rows_budgets_and_flags(trained_cnn, loaders, calibration, tmp_path) -> None:
    df = run_sweep(**sweep_kwargs(trained_cnn, loaders, calibration, tmp_path))
    assert list(df["candidate_id"]) == [
        "p00-fp32-eager",
        "p00-int8-eager",
        "p50-fp32-eager",
        "p50-int8-eager",
    ]
    assert (df["status"] == "ok").all()
    assert df["accepted"].tolist() == (df["memory_mb"] <= 0.03125).tolist()
    assert df["violates_0.03125mb"].tolist() == (~df["accepted"]).tolist()
    assert not df["violates_1mb"].any()
    assert df.loc[0, "top1_agreement"] == 1.0  # the baseline agrees with itself
    assert df["test_accuracy"].notna().all()
    on_disk = pd.read_csv(tmp_path / "sweep_results.csv")
    assert list(on_disk["candidate_id"]) == list(df["candidate_id"])


def test_a_crash_half_way_keeps_finished_rows(
    trained_cnn, loaders, calibration, tmp_path, monkeypatch
) -> None:
    real = tasks.evaluate_predict
    calls = {"n": 0}

    def crash_on_third_candidate(predict, loader, workers=1):
        if loader.dataset is loaders.val.dataset:
            calls["n"] += 1
            if calls["n"] == 3:  # the third candidate's validation pass
                raise KeyboardInterrupt
        return real(predict, loader, workers)

    monkeypatch.setattr(tasks, "evaluate_predict", crash_on_third_candidate)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(**sweep_kwargs(trained_cnn, loaders, calibration, tmp_path))
    rows = pd.read_csv(tmp_path / "sweep_results.csv")
    assert list(rows["candidate_id"]) == ["p00-fp32-eager", "p00-int8-eager"]
    assert set(rows["status"]) == {"timing_pending"}
    assert rows["accuracy"].notna().all()


def test_failed_conversion_is_a_row_with_its_error(
    trained_cnn, loaders, calibration, tmp_path, monkeypatch
) -> None:
    def broken(*_args, **_kwargs):
        raise QuantizationError("int8 (x86) conversion failed: simulated")

    monkeypatch.setattr(runtimes, "convert_precision", broken)
    df = run_sweep(
        **sweep_kwargs(
            trained_cnn, loaders, calibration, tmp_path, pruning_levels=[0.5], precisions=["int8"]
        )
    )
    row = df.iloc[0]
    assert row["status"] == "failed"
    assert row["error"] == "QuantizationError: int8 (x86) conversion failed: simulated"
    assert not row["accepted"]
    assert "accuracy" not in df.columns  # no float numbers pretending to be int8


def test_budgets_switch_with_the_metric(trained_cnn, loaders, calibration, tmp_path) -> None:
    kwargs = sweep_kwargs(
        trained_cnn,
        loaders,
        calibration,
        tmp_path,
        pruning_levels=[0.0],
        precisions=["int8"],
        memory_budgets_mb=[0.03],
        active_memory_budget_mb=0.03,
    )
    by_model = run_sweep(**kwargs).iloc[0]
    by_runtime = run_sweep(**kwargs, memory_budget_metric="runtime").iloc[0]
    # int8 SmallCNN: ~27.5 KiB serialized (fits 0.03 MiB); + 15.3 KiB of activations (does not).
    assert by_model["memory_mb"] < 0.03 < by_runtime["runtime_memory_mb"]
    assert by_model["accepted"]
    assert by_model["budget_metric"] == "model"
    assert not by_runtime["accepted"]
    assert by_runtime["budget_metric"] == "runtime"
    assert by_runtime["runtime_memory_mb"] == pytest.approx(
        (by_runtime["model_size_bytes"] + by_runtime["peak_activation_bytes"]) / 2**20
    )


def test_speedups_are_paired_against_the_fp32_baseline(
    trained_cnn, loaders, calibration, tmp_path
) -> None:
    df = run_sweep(**sweep_kwargs(trained_cnn, loaders, calibration, tmp_path))
    base = df[df["candidate_id"] == "p00-fp32-eager"].iloc[0]
    assert base["speedup_vs_baseline"] == 1.0
    assert (df["speedup_q25"] <= df["speedup_vs_baseline"]).all()
    assert (df["speedup_vs_baseline"] <= df["speedup_q75"]).all()
    # Timed side by side: the baseline (the anchor of speedups) is in every round; a candidate
    # whose p50 is already tight leaves the rounds early, never before the minimum.
    assert (df["latency_rounds"] <= base["latency_rounds"]).all()
    assert (df["latency_rounds"] >= 1).all()


def test_a_more_pruned_candidate_slower_beyond_the_cis_is_flagged() -> None:
    from dataclasses import replace

    from edge_opt.analysis.slowdowns import flag_slower_than_less_pruned
    from edge_opt.candidates.record import CandidateResult

    def timed(cid: str, level: float, precision: str, p50: float, low: float, high: float):
        metrics = SimpleNamespace(
            latency_p50_ms=p50, latency_p50_ci95_low_ms=low, latency_p50_ci95_high_ms=high
        )
        record = CandidateResult(
            cid, level, precision, "eager", "ok", None, 1, 1, 0, None, 0.9, True, 1.0
        )
        return replace(record, metrics=metrics)

    records = [
        timed("p00-fp32-eager", 0.0, "fp32", 0.10, 0.099, 0.101),
        timed("p50-fp32-eager", 0.5, "fp32", 0.08, 0.079, 0.081),
        timed("p70-fp32-eager", 0.7, "fp32", 0.12, 0.115, 0.125),
        timed("p70-int8-eager", 0.7, "int8", 0.30, 0.29, 0.31),
    ]
    flagged = flag_slower_than_less_pruned(records)
    assert [r.slower_than_less_pruned.slower for r in flagged] == [False, False, True, False]
    # The fastest lower level names it.
    assert flagged[2].slower_than_less_pruned.beaten_by == "p50-fp32-eager"


def test_only_an_as_accurate_candidate_within_the_memory_budget_may_stop_anothers_timing() -> None:
    import torch

    from edge_opt.candidates.plan import SweepPlan
    from edge_opt.decide.acceptance import contenders
    from edge_opt.decide.dominance import timing_dominance
    from edge_opt.measure.harness import HarnessSettings
    from edge_opt.measure.metrics import AccuracyResult

    def prepared(cid: str, correct: int, size_mb: float) -> tasks.PreparedCandidate:
        p = tasks.PreparedCandidate(cid, 0.0, "fp32", "eager", 1, 1, 0)
        p.built = SimpleNamespace()
        p.accuracy = AccuracyResult(correct, 100, torch.zeros(100, dtype=torch.int64))
        p.size_bytes, p.peak_bytes = int(size_mb * 1024 * 1024), 0
        return p

    ready = [prepared("a", 90, 1.0), prepared("b", 90, 1.0), prepared("c", 95, 8.0)]
    plan = SweepPlan(
        (0.0,),
        ("fp32",),
        HarnessSettings(),
        active_memory_budget_mb=4.0,
        latency_budget_ms=33.3,
    )
    dominance = timing_dominance(contenders(ready, plan), plan.latency_budget_ms)
    # c is more accurate but over the budget: it may be rejected, so it stops nobody; a and b
    # tie on accuracy and fit, so either may stop the other; nobody within budget beats c.
    assert dominance.over == {"a": ["b"], "b": ["a"], "c": []}
    assert dominance.p95_limit_ms == 33.3


def test_the_report_says_how_many_candidates_stopped_as_dominated() -> None:
    from edge_opt.reports.markdown import _dominated_sentence

    sweep = pd.DataFrame({"latency_stop_reason": ["converged", "dominated", "dominated", None]})
    sentence = _dominated_sentence(sweep)
    assert sentence.startswith(" 2 candidate(s) stopped being timed earlier")
    assert "`dominated`" in sentence
    assert _dominated_sentence(sweep.iloc[:1]) == ""
    assert _dominated_sentence(pd.DataFrame({"candidate_id": ["a"]})) == ""
