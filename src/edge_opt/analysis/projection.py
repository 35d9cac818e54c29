"""Latency projection to a target device, and an honest check of how far it can be trusted.

Per layer, a roofline time: max(MACs / peak MAC rate of the dtype, bytes / bandwidth). The
model for one call is

    latency_ms = alpha x sum_layers(roofline time) + beta x operators

where ``operators`` counts the layers that run (each costs framework/dispatch overhead).
``alpha`` (how far below its roofline the code runs) and ``beta`` (ms per operator) are fitted
by least squares on the candidates measured on this host, per runtime and precision (the
pruning levels are the data points), with the host's profile. Projecting to a device swaps in
its peaks and bandwidth and scales the per-operator
overhead by the ratio of fp32 peaks (a slower core dispatches more slowly). A projection is a
model: it goes in its own column (``latency_ms_projected_<device>``) and never replaces a
measured latency. ``validate_projection`` fits on all but one candidate and predicts the one
left out, for every candidate, and reports the share within +-10% and +-25%.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from edge_opt.analysis.device_profiles import HardwareProfile
from edge_opt.candidates.columns import C

# Fitted separately per runtime and precision: their fixed costs differ (eager int8 quantizes
# its input, ONNX Runtime has its own dispatch, fp16 on CPU converts).
GROUP_KEYS = ["runtime", "precision"]
MIN_ALPHA = 1.0  # code never runs faster than its roofline


def roofline_time_ms(layers: pd.DataFrame, device: HardwareProfile, dtype: str) -> float:
    """Sum over layers of max(compute time at the dtype's peak, traffic time), in ms."""
    compute = layers["macs"] / (device.peak(dtype) * 1e9)
    traffic = (layers["parameter_bytes"] + layers["activation_bytes"]) / (
        device.memory_bandwidth_gbps.value * 1e9
    )
    return float(np.maximum(compute, traffic).sum() * 1000.0)


def operator_count(layers: pd.DataFrame) -> int:
    return int(len(layers))


@dataclass(frozen=True)
class ProjectionModel:
    """latency_ms = alpha x roofline_ms + beta x operators (fitted per runtime)."""

    alpha: float
    beta: float
    fitted_on: int

    def predict(self, roofline_ms: float, operators: int, overhead_scale: float = 1.0) -> float:
        return self.alpha * roofline_ms + self.beta * operators * overhead_scale

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_projection(
    roofline_ms: np.ndarray, operators: np.ndarray, measured_ms: np.ndarray
) -> ProjectionModel:
    """Least squares for (alpha, beta) on relative error (each point weighs the same whether
    it takes 0.02 ms or 2 ms), with alpha >= 1 and beta >= 0.

    alpha >= 1 because the roofline time is a lower bound of the compute time: a fit that
    explains a host's latencies by per-operator overhead alone (tiny nets are overhead-bound
    on a fast core) would otherwise project the same latency at every pruning level onto a
    device whose compute is 20x slower."""
    x = np.column_stack([roofline_ms, operators]).astype(float)
    y = np.asarray(measured_ms, dtype=float)
    weights = 1.0 / np.maximum(y, 1e-9)
    xw, yw = x * weights[:, None], y * weights
    best: tuple[float, float] | None = None
    # Two unknowns: the unconstrained solution, or the best fit with one of them at zero.
    candidates = []
    solution, *_ = np.linalg.lstsq(xw, yw, rcond=None)
    if (solution >= 0).all():
        candidates.append((float(solution[0]), float(solution[1])))
    for column in (0, 1):
        denom = float(xw[:, column] @ xw[:, column])
        coef = max(0.0, float(xw[:, column] @ yw) / denom) if denom > 0 else 0.0
        candidates.append((coef, 0.0) if column == 0 else (0.0, coef))
    for coef in candidates:
        if best is None or _sse(xw, yw, coef) < _sse(xw, yw, best):
            best = coef
    alpha, beta = best if best is not None else (0.0, 0.0)
    if alpha < MIN_ALPHA:  # refit beta on what the roofline at MIN_ALPHA leaves unexplained
        alpha = MIN_ALPHA
        rest = yw - alpha * xw[:, 0]
        denom = float(xw[:, 1] @ xw[:, 1])
        beta = max(0.0, float(xw[:, 1] @ rest) / denom) if denom > 0 else 0.0
    return ProjectionModel(alpha, beta, len(y))


def _sse(xw: np.ndarray, yw: np.ndarray, coef: tuple[float, float]) -> float:
    residual = xw @ np.array(coef) - yw
    return float(residual @ residual)


@dataclass(frozen=True)
class ProjectionValidation:
    """Leave-one-out accuracy of the projection on this host."""

    candidates: int
    within_10pct: float
    within_25pct: float
    median_abs_error_pct: float
    worst_abs_error_pct: float
    per_candidate: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_projection(frame: pd.DataFrame) -> ProjectionValidation:
    """Leave-one-out over candidates of the same runtime and precision.

    Args:
        frame: one row per candidate with ``candidate_id``, ``runtime``, ``roofline_ms_host``,
            ``operators`` and ``latency_p50_ms`` (measured).
    """
    results = []
    for (runtime, _precision), group in frame.groupby(GROUP_KEYS):
        if len(group) < 3:
            continue  # two points fit any two-parameter model: nothing to validate
        for index in group.index:
            train = group.drop(index)
            model = fit_projection(
                train[C.roofline_ms_host].to_numpy(),
                train["operators"].to_numpy(),
                train[C.latency_p50_ms].to_numpy(),
            )
            row = group.loc[index]
            predicted = model.predict(row[C.roofline_ms_host], int(row["operators"]))
            error = (predicted - row[C.latency_p50_ms]) / row[C.latency_p50_ms] * 100.0
            results.append(
                {
                    C.candidate_id: row[C.candidate_id],
                    "runtime": runtime,
                    "measured_ms": float(row[C.latency_p50_ms]),
                    "predicted_ms": float(predicted),
                    "error_pct": float(error),
                }
            )
    if not results:
        return ProjectionValidation(0, float("nan"), float("nan"), float("nan"), float("nan"), [])
    errors = np.abs([r["error_pct"] for r in results])
    return ProjectionValidation(
        candidates=len(results),
        within_10pct=float((errors <= 10).mean()),
        within_25pct=float((errors <= 25).mean()),
        median_abs_error_pct=float(np.median(errors)),
        worst_abs_error_pct=float(errors.max()),
        per_candidate=results,
    )


def project_latencies(
    frame: pd.DataFrame,
    host: HardwareProfile,
    target: HardwareProfile,
    layers_by_candidate: dict[str, pd.DataFrame],
) -> pd.Series:
    """Projected p50 latency (ms) on ``target`` for every candidate in ``frame``, fitted per
    runtime on all measured candidates of that runtime (NaN where a runtime has < 2)."""
    projected = pd.Series(np.nan, index=frame.index, dtype=float)
    overhead_scale = host.peak("fp32") / max(target.peak("fp32"), 1e-9)
    for (_runtime, precision), group in frame.groupby(GROUP_KEYS):
        if len(group) < 2 or not target.known(str(precision)):
            continue  # an unknown peak is not guessed: the column stays empty
        model = fit_projection(
            group[C.roofline_ms_host].to_numpy(),
            group["operators"].to_numpy(),
            group[C.latency_p50_ms].to_numpy(),
        )
        for index, row in group.iterrows():
            layers = layers_by_candidate[row[C.candidate_id]]
            roof = roofline_time_ms(layers, target, row[C.precision])
            projected[index] = model.predict(roof, int(row["operators"]), overhead_scale)
    return projected


def cross_device_validation(sweep: pd.DataFrame, tolerance: float = 0.10) -> dict[str, Any]:
    """How the projection onto the target compares with the target's own measurements."""
    projected = next((c for c in sweep.columns if c.startswith("latency_ms_projected_")), None)
    if projected is None or C.device_latency_p50_ms not in sweep.columns:
        return {"available": False, "why": "no device measurements in this run"}
    both = sweep[sweep[projected].notna() & sweep[C.device_latency_p50_ms].notna()]
    if both.empty:
        return {"available": False, "why": "no candidate is both projected and device-measured"}
    ratio = both[projected] / both[C.device_latency_p50_ms]
    return {
        "available": True,
        "device": str(both[C.device_measured_on].iloc[0]),
        "projection": projected,
        "candidates": int(len(both)),
        "tolerance": tolerance,
        "within_tolerance": float(((ratio - 1).abs() <= tolerance).mean()),
        "median_projected_over_measured": float(ratio.median()),
        "rows": [
            {
                C.candidate_id: cid,
                "projected_ms": float(p),
                "measured_ms": float(m),
                "projected_over_measured": float(p / m),
            }
            for cid, p, m in zip(
                both[C.candidate_id],
                both[projected],
                both[C.device_latency_p50_ms],
                strict=True,
            )
        ],
    }
