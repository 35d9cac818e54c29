from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from edge_opt.analysis.devices import get_device_profile
from edge_opt.candidates.plan import SweepPlan
from edge_opt.compress.pruning import structured_channel_prune
from edge_opt.config.loading import build_config
from edge_opt.config.sections import SearchConfig
from edge_opt.decide.frontier import pareto_frontier
from edge_opt.errors import ConfigError
from edge_opt.measure.harness import HarnessSettings
from edge_opt.models.zoo import TinyResNet
from edge_opt.search import engine as search_engine
from edge_opt.search.frontier import dominates, hypervolume_2d, non_dominated
from edge_opt.search.space import channel_groups, prune_groups, removed_fraction
from edge_opt.search.state import SearchInputs

REPO = Path(__file__).resolve().parents[2]
FAST = HarnessSettings(
    warmup_min=2, warmup_max_blocks=2, calls_per_round=5, max_rounds=2, min_rounds=1
)


def problems(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config(raw)
    return info.value.problems


# ---------------------------------------------------------------------------------- config
def test_grid_is_the_default_strategy() -> None:
    assert build_config({}).search == SearchConfig(strategy="grid")


def test_bad_strategy_is_one_line_naming_field_value_and_choices() -> None:
    [line] = problems({"search": {"strategy": "random"}})
    assert line.startswith("search.strategy: Input should be 'grid' or 'optuna', got 'random'")


def test_trials_below_one_is_one_line() -> None:
    assert problems({"search": {"trials": 0}}) == [
        "search.trials: Input should be greater than or equal to 1, got 0 "
        "(Trials the search evaluates.)"
    ]


def test_unknown_search_key_names_the_closest_one() -> None:
    assert problems({"search": {"strategy": "optuna", "trails": 5}}) == [
        "search.trails: unknown key; did you mean 'trials'?"
    ]


# ------------------------------------------------------------------------------- frontier
def test_hypervolume_of_a_staircase_is_its_area() -> None:
    # (1,3) adds 3 x 1 and (2,1) adds 2 x 2 below reference (4,4); (3,3) is dominated and
    # (5,0) lies beyond the reference: 7 in all.
    assert hypervolume_2d([(1, 3), (2, 1), (3, 3), (5, 0)], (4, 4)) == 7.0
    assert hypervolume_2d([], (1, 1)) == 0.0
    assert hypervolume_2d([(0, 0)], (1, 1)) == 1.0


def test_dominance_keeps_equal_points_and_drops_beaten_ones() -> None:
    assert dominates((1, 1), (1, 2))
    assert not dominates((1, 1), (1, 1))
    assert non_dominated([(1, 3), (2, 1), (3, 3), (1, 3)]) == [0, 1, 3]


# ---------------------------------------------------------------------------------- space
def test_one_ratio_for_every_group_is_the_uniform_prune() -> None:
    torch.manual_seed(0)
    model, example = TinyResNet().eval(), torch.zeros(1, 1, 28, 28)
    groups = channel_groups(model, example)
    # The residual adds tie the stem to block1's output, and each block's conv2 to its shortcut.
    assert [g.name for g in groups][:4] == [
        "stem.0",
        "block1.conv1",
        "block2.conv1",
        "block2.conv2",
    ]
    assert groups[0].members == ("stem.0", "block1.conv2")
    by_group = prune_groups(model, {g.name: 0.5 for g in groups}, example)
    uniform = structured_channel_prune(model, 0.5, example)
    assert all(
        torch.equal(a, b)
        for a, b in zip(by_group.state_dict().values(), uniform.state_dict().values(), strict=True)
    )
    one = prune_groups(model, {"stem.0": 0.25}, example)
    assert one.stem[0].out_channels == 12
    assert one.block1.conv1.out_channels == 16
    assert removed_fraction(one, groups) == pytest.approx(4 / sum(g.channels for g in groups))


# --------------------------------------------------------------------------------- search
def _inputs(trained_cnn, loaders, calibration, tmp_path: Path, budget_mb: float) -> SearchInputs:
    plan = SweepPlan(
        pruning_levels=(0.0,),
        precisions=("fp32", "int8"),
        harness=FAST,
        memory_budgets_mb=(budget_mb,),
        active_memory_budget_mb=budget_mb,
        throughput_repeats=2,
        measure_rss=False,
    )
    preds = torch.cat([trained_cnn(x).argmax(1) for x, _ in loaders.val])
    return SearchInputs(
        plan=plan,
        baseline=trained_cnn,
        val_loader=loaders.val,
        calibration=calibration,
        reference_predictions=preds,
        input_shape=(1, 28, 28),
        host=get_device_profile("raspberry-pi-4"),
        workdir=tmp_path,
    )


SEARCH = SearchConfig(strategy="optuna", trials=4, population=2, seed=5, accuracy_subset=100)


def test_tiny_search_rows_are_unique_stable_and_its_frontier_non_dominated(
    trained_cnn, loaders, calibration, tmp_path: Path
) -> None:
    inputs = _inputs(trained_cnn, loaders, calibration, tmp_path / "a", 1.0)
    first = search_engine.run_search(SEARCH, inputs).frame
    again = search_engine.run_search(
        SEARCH, _inputs(trained_cnn, loaders, calibration, tmp_path / "b", 1.0)
    ).frame
    ids = first["candidate_id"].tolist()
    # Every trial is a row, plus the reference (the unpruned fp32 eager model).
    assert len(ids) == SEARCH.trials + 1 == len(set(ids))
    assert ids[0] == "p00-fp32-eager"
    assert all(i.startswith("t00") for i in ids[1:])
    assert ids == again["candidate_id"].tolist()  # same seed, same trials
    trials = first[first["search_trial"].notna()]
    assert sorted(trials["search_trial"]) == list(range(SEARCH.trials))
    assert set(trials["search_stage"]) <= {"timed", "dominated", "duplicate", "size", "roofline"}
    assert {"ratio.conv1", "ratio.conv2"} <= set(first.columns)
    timed = first[first["status"] == "ok"]
    assert (timed["latency_p50_ms"] > 0).all()
    assert (timed["search_stage"].iloc[1:] == "timed").all()
    assert len(timed) >= 2
    front = pareto_frontier(first, "latency_p50_ms")
    points = [(-a, lat) for a, lat in zip(front["accuracy"], front["latency_p50_ms"], strict=True)]
    everyone = [
        (-a, lat) for a, lat in zip(timed["accuracy"], timed["latency_p50_ms"], strict=True)
    ]
    assert points
    assert not any(dominates(q, p) for p in points for q in everyone)


def test_prefilter_rejects_an_over_budget_trial_without_timing_it(
    trained_cnn, loaders, calibration, tmp_path: Path, monkeypatch
) -> None:
    timed_ids: list[str] = []
    real = search_engine.time_side_by_side

    def spy(built, *args, **kwargs):
        timed_ids.extend(built)
        return real(built, *args, **kwargs)

    monkeypatch.setattr(search_engine, "time_side_by_side", spy)
    # 1 KiB: even int8 SmallCNN at 75% pruning keeps more parameter bytes than that.
    inputs = _inputs(trained_cnn, loaders, calibration, tmp_path, 1 / 1024)
    frame = search_engine.run_search(SEARCH.model_copy(update={"trials": 3}), inputs).frame
    trials = frame[frame["search_trial"].notna()]
    assert (trials["search_stage"] == "size").all()
    assert trials["error"].str.contains("over the active budget of 0.000976562 MiB").all()
    assert trials["latency_p50_ms"].isna().all()
    assert timed_ids == ["p00-fp32-eager"]  # only the reference was timed
    assert not frame["accepted"].any()


# ------------------------------------------------------------------------------------ CLI
def _edge_opt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "edge-opt"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        cwd=REPO,
        timeout=300,
    )


def test_cli_bad_search_block_is_one_line_and_exit_1() -> None:
    proc = _edge_opt(
        "validate", "configs/quick.yaml", "--set", "search={strategy: optuna, trials: 0}"
    )
    assert proc.returncode == 1
    assert "search.trials: Input should be greater than or equal to 1, got 0" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_cli_search_run_recommends_a_timed_trial_and_export_refuses_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = [
        "dataset=synthetic",
        "epochs=1",
        "val_subset=200",
        "test_subset=100",
        "train_subset=400",
        "benchmark_repeats=10",
        "benchmark_trials=1",
        "benchmark_max_rounds=2",
        "benchmark_warmup=2",
        "benchmark_instances=1",
        "throughput_repeats=2",
        "measure_peak_rss=false",
        "profile_repeats=2",
        "precisions=[fp32, int8]",
        "memory_budgets_mb=[1.0]",
        "active_memory_budget_mb=1.0",
        "search={strategy: optuna, trials: 4, population: 4, accuracy_subset: 100}",
    ]
    proc = _edge_opt(
        "run", "configs/quick.yaml", *[a for s in settings for a in ("--set", s)], "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    sweep = pd.read_csv(out / "sweep_results.csv")
    assert sweep["candidate_id"].tolist()[0] == "p00-fp32-eager"
    assert sorted(sweep["search_trial"].dropna().astype(int)) == [0, 1, 2, 3]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recommended"] in set(sweep.loc[sweep["status"] == "ok", "candidate_id"])
    export = _edge_opt("export", str(out))
    assert export.returncode == 1
    assert "export rebuilds grid candidates only" in export.stderr


def test_trials_fine_tune_distilled_from_the_baseline_when_asked(
    trained_cnn, loaders, calibration, tmp_path: Path
) -> None:
    from dataclasses import replace
    from types import SimpleNamespace

    from edge_opt.compress.distillation import Distillation
    from edge_opt.compress.pruning import structured_channel_prune
    from edge_opt.compress.training import train_model
    from edge_opt.data.splits import batch_loader
    from edge_opt.search.trials import fine_tuned

    def shuffled():  # the same order for every call (a loader's generator advances)
        generator = torch.Generator().manual_seed(1)
        return batch_loader(loaders.train.dataset, 50, shuffle=True, generator=generator)

    base = _inputs(trained_cnn, loaders, calibration, tmp_path, 1.0)
    base = replace(base, plan=replace(base.plan, fine_tune_epochs=1), seed=3)
    pruned = structured_channel_prune(trained_cnn, 0.5)
    runs = []
    for distillation in (None, (2.0, 0.5)):
        inputs = replace(base, train_loader=shuffled(), distillation=distillation)
        runs.append(fine_tuned(SimpleNamespace(inputs=inputs, variants={}), (0.5,), pruned))
    plain, distilled = runs
    objective = Distillation.of(trained_cnn, 2.0, 0.5)
    expected = train_model(pruned, shuffled(), 1, base.learning_rate, seed=3, objective=objective)
    weights = [m.state_dict() for m in (plain, distilled, expected)]
    assert not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert all(torch.equal(weights[1][k], weights[2][k]) for k in weights[1])
