from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from edge_opt.config.loading import build_config
from edge_opt.decide.recommend import recommend_across_seeds
from edge_opt.orchestrate.multiseed import mean_ci95, run_multi_seed, summarize_seeds


def test_mean_ci95_student_t() -> None:
    mean, std, low, high = mean_ci95(pd.Series([1.0, 2.0, 3.0]))
    assert (mean, std) == (2.0, 1.0)
    assert (high - mean) == pytest.approx(4.303 / math.sqrt(3))  # t(0.975, 2) = 4.303
    assert math.isnan(mean_ci95(pd.Series([1.0]))[2])


def test_summary_marks_acceptance_share() -> None:
    rows = pd.DataFrame(
        [
            {
                "candidate_id": "a",
                "pruning_level": 0.0,
                "precision": "int8",
                "runtime": "eager",
                "status": "ok",
                "accepted": acc,
                "accuracy": 0.9,
                "test_accuracy": 0.9,
                "latency_p50_ms": 1.0,
                "energy_proxy_j": 1e-3,
                "memory_mb": 0.02,
                "seed": s,
            }
            for s, acc in ((1, True), (2, False))
        ]
    )
    row = summarize_seeds(rows).iloc[0]
    assert row["accepted_share"] == 0.5
    assert not row["accepted_all"]
    assert row["accuracy_ci95_low"] == row["accuracy_ci95_high"] == 0.9


@pytest.mark.slow
def test_two_seed_run_writes_summaries_with_ci(tmp_path) -> None:
    cfg = build_config(
        {
            "dataset": "synthetic",
            "seeds": [1, 2],
            "epochs": 1,
            "val_subset": 100,
            "pruning_levels": [0.0, 0.5],
            "precisions": ["fp32", "int8"],
            "batch_size": 64,
            "benchmark_repeats": 10,
            "benchmark_trials": 2,
            "benchmark_max_rounds": 2,
            "benchmark_warmup": 2,
            "throughput_repeats": 2,
            "measure_peak_rss": False,
            "memory_budgets_mb": [1.0],
            "active_memory_budget_mb": 1.0,
            "output_dir": str(tmp_path),
        }
    )
    result = run_multi_seed(cfg)
    assert (tmp_path / "seed_1" / "summary.json").is_file()
    assert (tmp_path / "seed_2" / "sweep_results.csv").is_file()
    summary = pd.read_csv(tmp_path / "multi_seed_summary.csv")
    assert len(summary) == 4
    assert (summary["seeds"] == 2).all()
    for metric in ("accuracy", "latency_p50_ms"):
        for suffix in ("mean", "std", "ci95_low", "ci95_high"):
            assert f"{metric}_{suffix}" in summary.columns
        assert (summary[f"{metric}_ci95_low"] <= summary[f"{metric}_mean"]).all()
        assert (summary[f"{metric}_mean"] <= summary[f"{metric}_ci95_high"]).all()
    assert (tmp_path / "multi_seed_frontier_latency.csv").is_file()
    assert result.seeds == [1, 2]
    combined = json.loads((tmp_path / "multi_seed_summary.json").read_text())
    report = (tmp_path / "report.md").read_text()
    assert "# edge-opt multi-seed report" in report
    assert combined["recommended_reason"] in report
    page = (tmp_path / "report.html").read_text()
    assert page.count("<tr data-id=") == len(summary)


def test_combined_recommendation_uses_seed_means_and_counts_agreement() -> None:
    def row(cid: str, seed: int, acc: float, p50: float, accepted: bool = True) -> dict:
        return {
            "candidate_id": cid,
            "pruning_level": 0.0,
            "precision": "int8",
            "runtime": "eager",
            "status": "ok",
            "accepted": accepted,
            "accuracy": acc,
            "test_accuracy": acc,
            "latency_p50_ms": p50,
            "energy_proxy_j": 1e-3,
            "memory_mb": 0.02,
            "seed": seed,
        }

    rows = pd.DataFrame(
        [
            row("fast", 1, 0.95, 1.0),
            row("fast", 2, 0.95, 1.2),
            # Faster on average, but rejected under seed 2: never the combined pick.
            row("fickle", 1, 0.96, 0.5),
            row("fickle", 2, 0.96, 0.5, accepted=False),
            row("slow", 1, 0.96, 2.0),
            row("slow", 2, 0.96, 2.0),
        ]
    )
    rec = recommend_across_seeds(summarize_seeds(rows), [0.96, 0.96], ["fickle", "fast"], 0.02, 1.0)
    assert rec["candidate_id"] == "fast"
    assert rec["per_seed"] == ["fickle", "fast"]
    assert rec["seeds_agreeing"] == 1
    assert rec["reason"].endswith("1 of 2 seed(s) picked it on their own")
