"""What a reader must see next to the numbers: the environment record and the run's warnings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import pandas as pd
import torch

from edge_opt.candidates.columns import C
from edge_opt.config.schema import ExperimentConfig
from edge_opt.infra.environment import describe_environment, has_native_fp16
from edge_opt.infra.text import percent
from edge_opt.measure.energy import PowerSource, rapl_status
from edge_opt.measure.harness import HarnessSettings
from edge_opt.measure.process import load_average
from edge_opt.runtimes.registry import runtime_packages

FP16_SLOW_RATIO = 3.0
DRIFT_NOTE = 0.15  # a drift of the reference kernel beyond this is told to the reader


def environment_record(
    cfg: ExperimentConfig,
    ok_rows: pd.DataFrame,
    allocator: Mapping[str, Any],
    power: PowerSource,
    load_before: list[float] | None,
    harness: HarnessSettings,
) -> dict[str, Any]:
    """The manifest's environment: machine, versions, kernels, allocator, power, load, timing
    protocol, and the rounds the noise guard redid."""
    environment = describe_environment(
        cfg.benchmark_threads,
        torch.backends.quantized.engine,
        cfg.train_threads,
        runtime_packages(),
        rapl_status(),
    )
    environment["allocator"] = dict(allocator)
    environment["power"] = asdict(power)
    environment["load_average_before"] = load_before
    environment["load_average_after"] = load_average()
    environment["timing_protocol"] = asdict(harness)
    if C.noisy in ok_rows:
        # Every candidate is retried with its round: the max is the number of rounds redone.
        environment["noisy_rounds_retried"] = int(ok_rows[C.noisy_retries].max())
        noisy = ok_rows[C.noisy].astype(bool)
        environment["noisy_candidates"] = ok_rows.loc[noisy, C.candidate_id].tolist()
        environment[C.host_reference_ms] = float(ok_rows[C.host_reference_ms].min())
    return environment


def observations(sweep: pd.DataFrame, environment: Mapping[str, Any]) -> list[str]:
    """Failed candidates, and fp16 timings a CPU without native fp16 cannot stand for."""
    notes = []
    for _, row in sweep[sweep[C.status] == "failed"].iterrows():
        notes.append(f"{row[C.candidate_id]} failed: {row[C.error]}")
    ok = sweep[sweep[C.status] == "ok"] if not sweep.empty else sweep
    ok = ok[ok[C.runtime] == "eager"] if C.runtime in ok else ok  # fp16 check: eager kernels
    if ok.empty or not {"fp16", "fp32"} <= set(ok[C.precision]):
        return notes
    fp32 = ok[ok[C.precision] == "fp32"].set_index(C.pruning_level)[C.latency_p50_ms]
    fp16 = ok[ok[C.precision] == "fp16"].set_index(C.pruning_level)[C.latency_p50_ms]
    common = fp32.index.intersection(fp16.index)
    if len(common):
        ratio = float((fp16[common] / fp32[common]).median())
        native = has_native_fp16(environment["cpu"])
        if ratio > FP16_SLOW_RATIO or not native:
            notes.append(
                f"fp16 ran {ratio:.1f}x the fp32 p50 latency (median over pruning levels); "
                f"this CPU {'has' if native else 'lacks'} fp16 arithmetic (x86 AVX512-FP16, "
                "Arm FP16), and PyTorch's "
                "eager CPU kernels largely emulate fp16: do not read CPU fp16 timings as "
                "what an fp16-native accelerator would do"
            )
    return notes


def deployable_warnings(exported: list[dict[str, Any]]) -> list[str]:
    """One warning per deployable file the run meant to write and could not."""
    return [
        f"the deployable file of {m[C.candidate_id]} could not be written: {m.get('error')}"
        for m in exported
        if not m.get("path")
    ]


def timing_warnings(ok_rows: pd.DataFrame, cfg: ExperimentConfig) -> list[str]:
    """What a reader must know about the timing: real load seen, precision not reached."""
    if ok_rows.empty or C.noisy not in ok_rows:
        return []
    warnings = _load_warnings(ok_rows)
    stops = ok_rows[C.latency_stop_reason]
    loose = ok_rows[~stops.isin(["converged", "instance_spread", "dominated"])]
    if len(loose):
        worst = loose[C.latency_p50_precision].max()
        warnings.append(
            f"the p50 of {len(loose)} of {len(ok_rows)} candidate(s) did not reach +-"
            f"{percent(cfg.benchmark_precision)} ({loose[C.latency_stop_reason].iloc[0]}; widest "
            f"95% CI +-{worst:.1%}): compare those p50s with their CIs"
        )
    spread = ok_rows[stops == "instance_spread"]
    if len(spread):
        worst = spread[C.latency_p50_precision].max()
        warnings.append(
            f"{len(spread)} of {len(ok_rows)} candidate(s) have p50 CIs wider than +-"
            f"{percent(cfg.benchmark_precision)} (widest +-{worst:.1%}) because their "
            "independently built instances run at different speeds; more rounds would not "
            "narrow them: "
            "compare those p50s with their CIs"
        )
    return warnings


def _load_warnings(ok_rows: pd.DataFrame) -> list[str]:
    """Load seen during timing, a drifting core, and candidates slower for fewer MACs."""
    warnings = []
    noisy = ok_rows[ok_rows[C.noisy].astype(bool)]
    if not noisy.empty:
        signals = sorted({s for s in noisy[C.noisy_signal].fillna("") if s})
        warnings.append(
            f"{len(noisy)} candidate(s) were timed while the machine was loaded, even after "
            f"retries: {', '.join(noisy[C.candidate_id])}; signal: {' | '.join(signals)}; "
            "their latencies are flagged `noisy` (rerun on a quiet machine)"
        )
    drift = ok_rows[C.host_drift].abs().max() if C.host_drift in ok_rows else None
    if drift is not None and pd.notna(drift) and drift > DRIFT_NOTE:
        signed = ok_rows.loc[ok_rows[C.host_drift].abs().idxmax(), C.host_drift]
        warnings.append(
            f"this core's speed drifted during timing (the reference kernel's typical time moved "
            f"{signed:+.0%} from start to end): ratios measured side by side hold; absolute "
            "times mix " + ("slower" if signed > 0 else "faster") + " and earlier phases"
        )
    if C.slower_than_less_pruned in ok_rows:
        slow = ok_rows[ok_rows[C.slower_than_less_pruned].fillna(False).astype(bool)]
        if not slow.empty:
            pairs = ", ".join(
                f"{r.candidate_id} (slower than {r.faster_less_pruned})" for r in slow.itertuples()
            )
            warnings.append(
                f"pruning more made {len(slow)} candidate(s) slower, beyond the CIs: {pairs}; "
                "fewer MACs did not mean less time there (try channel_multiple: 8 or 16)"
            )
    return warnings
