"""What decided the pick and what flips it, and the latency budget, on hand-made sweeps."""

from __future__ import annotations

import pandas as pd

from edge_opt.decide.budgets import apply_latency_budget
from edge_opt.decide.explain import explain_decision


def _sweep() -> pd.DataFrame:
    return pd.DataFrame(
        [
            # id, accuracy, p50, p95, memory (MB), accepted (memory budget 0.05 MB)
            ("p00-fp32-onnxruntime", 0.90, 0.02, 0.03, 0.087, False),
            ("p50-fp32-onnxruntime", 0.80, 0.015, 0.02, 0.044, True),
            ("p00-int8-onnxruntime", 0.895, 0.04, 0.05, 0.031, True),
            ("p00-int8-eager", 0.896, 0.19, 0.25, 0.027, True),
        ],
        columns=[
            "candidate_id",
            "accuracy",
            "latency_p50_ms",
            "latency_p95_ms",
            "memory_mb",
            "accepted",
        ],
    ).assign(status="ok")


def test_the_decision_names_the_binding_constraint_and_the_runner_up() -> None:
    decision = explain_decision(
        _sweep(), "p00-int8-onnxruntime", 0.90, 0.01, "latency_p50_ms", 0.05, "memory_mb"
    )
    assert decision is not None
    # The fastest candidate (p50 fp32) loses 10 points: the accuracy tolerance kept it out.
    assert decision.decided_by == "accuracy tolerance"
    assert "p50-fp32-onnxruntime" in decision.explanation
    assert decision.runner_up == "p00-int8-eager"
    assert any("runner-up p00-int8-eager" in flip and "4.75x" in flip for flip in decision.flips)


def test_the_memory_budget_decides_when_the_fastest_accurate_one_is_too_big() -> None:
    sweep = _sweep().drop(index=1)  # without the inaccurate one, fp32 ORT is the fastest
    decision = explain_decision(
        sweep, "p00-int8-onnxruntime", 0.90, 0.01, "latency_p50_ms", 0.05, "memory_mb"
    )
    assert decision is not None
    assert decision.decided_by == "memory budget"
    assert any("active_memory_budget_mb >= 0.087" in flip for flip in decision.flips)


def test_nothing_binds_when_the_pick_is_the_fastest() -> None:
    sweep = _sweep().assign(accepted=True).drop(index=1)
    decision = explain_decision(
        sweep, "p00-fp32-onnxruntime", 0.90, 0.01, "latency_p50_ms", 1.0, "memory_mb"
    )
    assert decision is not None
    assert decision.decided_by == "cost"


def test_a_latency_budget_rejects_on_the_p95_and_prefers_the_device_figure() -> None:
    sweep = _sweep()
    sweep["device_latency_p95_ms"] = [None, None, 0.5, None]  # the device measured one
    out = apply_latency_budget(sweep, 0.2)
    by_id = out.set_index("candidate_id")
    assert bool(by_id.loc["p00-int8-eager", "violates_latency_budget"]) is True  # host 0.25
    assert not bool(by_id.loc["p00-int8-eager", "accepted"])
    # The device's own p95 (0.5 ms) decides for the candidate it measured, not the host's.
    assert bool(by_id.loc["p00-int8-onnxruntime", "violates_latency_budget"]) is True
    assert bool(by_id.loc["p50-fp32-onnxruntime", "accepted"]) is True
    assert apply_latency_budget(sweep, None) is sweep


def test_a_latency_budget_rejection_is_not_blamed_on_memory() -> None:
    from edge_opt.decide.recommend import recommend_candidate

    sweep = apply_latency_budget(_sweep().assign(accepted=True, active_budget_mb=1.0), 1e-9)
    rec = recommend_candidate(sweep, 0.90, 0.01)
    assert rec.candidate_id is None
    assert "exceed the latency budget" in rec.reason


def test_a_latency_budget_is_checked_on_the_targets_projected_p95_and_says_so() -> None:
    sweep = _sweep()
    sweep["latency_p95_ms_projected_raspberry-pi-4"] = [0.3, 0.1, None, 2.0]
    sweep["device_latency_p95_ms"] = [None, None, None, 0.01]  # a measurement outranks a model
    by_id = apply_latency_budget(sweep, 0.2, "raspberry-pi-4").set_index("candidate_id")
    # Within budget on this host (0.03 ms) but not on the Pi (0.3 ms projected).
    assert by_id.loc["p00-fp32-onnxruntime", "latency_budget_on"] == "raspberry-pi-4 (projected)"
    assert bool(by_id.loc["p00-fp32-onnxruntime", "violates_latency_budget"]) is True
    # Not projected: this host's measured p95, and the row says so.
    assert by_id.loc["p00-int8-onnxruntime", "latency_budget_on"] == "this host (measured)"
    assert by_id.loc["p00-int8-eager", "latency_budget_on"] == "the device node (measured)"
    assert by_id.loc["p00-int8-eager", "latency_budget_figure"] == 0.01
    # Without a target other than this machine, the projection is not used.
    here = apply_latency_budget(sweep, 0.2).set_index("candidate_id")
    assert here.loc["p00-fp32-onnxruntime", "latency_budget_on"] == "this host (measured)"
