"""The verdict's answer for the target: who measured, for which device, what the pick does
there and on what evidence."""

from __future__ import annotations

import pandas as pd

from edge_opt.decide.target import TargetContext, target_answer

HOST = "vm [local] (AMD EPYC; x86_64; avx2)"
PI = TargetContext(
    "raspberry-pi-4",
    "Raspberry Pi 4 Model B",
    here=False,
    unknown={"int8": "no int8 dot product on the A72"},
    validation={"median_abs_error_pct": 6.2, "within_25pct": 0.79, "candidates": 24},
)


def _frame(**extra) -> pd.DataFrame:
    row = {
        "candidate_id": "p50-fp32-onnxruntime",
        "precision": "fp32",
        "runtime": "onnxruntime",
        "status": "ok",
        "latency_p50_ms": 0.0155,
        "latency_p95_ms": 0.02,
        "measured_on": HOST,
        "latency_ms_projected_raspberry-pi-4": 0.101,
        "latency_p95_ms_projected_raspberry-pi-4": 0.13,
        "latency_budget_on": "raspberry-pi-4 (projected)",
    }
    return pd.DataFrame([{**row, **extra}])


def test_a_projected_target_names_both_machines_and_the_models_error() -> None:
    answer = target_answer(_frame(), "p50-fp32-onnxruntime", PI)
    assert answer.basis == "projected"
    lines = answer.lines()
    assert lines[0] == f"Measured on: {HOST}. Target: raspberry-pi-4 (Raspberry Pi 4 Model B)."
    assert "modelled, not measured" in lines[1]
    assert "projected p50 0.101 ms, p95 0.13 ms" in lines[1]
    assert "79% of candidates within 25%" in lines[1]
    assert lines[2] == (
        "Latency budget checked on the p95 of: raspberry-pi-4 (projected) for 1 candidate(s)."
    )
    assert lines[3].startswith("To measure on raspberry-pi-4 itself, run edge-opt there")


def test_a_precision_without_a_rate_says_why_it_is_not_projected() -> None:
    frame = _frame(precision="int8", **{"latency_ms_projected_raspberry-pi-4": None})
    answer = target_answer(frame, "p50-fp32-onnxruntime", PI)
    assert answer.basis == "not-projected"
    assert "int8 rate is unknown (no int8 dot product on the A72)" in answer.lines()[1]


def test_the_device_nodes_figures_lead_and_a_local_target_is_measured_here() -> None:
    device = _frame(device_latency_p50_ms=0.2, device_latency_p95_ms=0.3)
    answer = target_answer(device, "p50-fp32-onnxruntime", PI)
    assert answer.basis == "device-measured"
    assert answer.how_to_measure is None
    assert "measured by its device node" in answer.lines()[1]
    here = TargetContext("host", "this machine", here=True)
    local = target_answer(_frame(), "p50-fp32-onnxruntime", here)
    assert local.basis == "measured-here"
    assert local.lines()[0] == f"Measured on: {HOST}, which is the target (host)."


def test_no_pick_still_names_the_machines() -> None:
    answer = target_answer(_frame(), None, PI)
    assert answer.basis == "no-pick"
    assert answer.lines()[0].startswith("Measured on: ")
