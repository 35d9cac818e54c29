"""Hardware analysis of measured candidates: achieved bandwidth and precision trade-offs (the
per-layer accounting they start from is ``models.layers``).

Formulas (fixed by the specification, pinned by tests):
- ``summarize_hardware``: total_bytes = sum(parameter_bytes) + sum(activation_bytes);
  latency_s = max(latency_ms / 1000, 1e-9);
  achieved_bandwidth_gbps = total_bytes / latency_s / 1e9;
  bandwidth_utilization = achieved / max(configured, 1e-9);
  achieved_gmacs = total_macs / latency_s / 1e9.

These are modelled traffic figures (each byte counted once), not hardware counter readings."""

from __future__ import annotations

import pandas as pd

from edge_opt.candidates.columns import C


def summarize_hardware(
    layerwise_df: pd.DataFrame,
    latency_ms: float,
    memory_bandwidth_gbps: float,
    peak_compute_gmacs: float | None = None,
) -> dict[str, float]:
    """Achieved bandwidth and compute rate implied by a measured latency.

    Returns:
        The specified keys (``estimated_total_bytes``, ``estimated_total_macs``,
        ``achieved_bandwidth_gbps``, ``configured_memory_bandwidth_gbps``,
        ``bandwidth_utilization``, ``achieved_gmacs``), plus
        ``arithmetic_intensity_macs_per_byte`` and, when ``peak_compute_gmacs`` is given,
        ``configured_peak_compute_gmacs`` and ``compute_utilization``.
    """
    total_bytes = float(
        layerwise_df["parameter_bytes"].sum() + layerwise_df["activation_bytes"].sum()
    )
    total_macs = float(layerwise_df["macs"].sum())
    latency_s = max(latency_ms / 1000.0, 1e-9)
    achieved_bandwidth_gbps = total_bytes / latency_s / 1e9
    achieved_gmacs = total_macs / latency_s / 1e9
    summary = {
        "estimated_total_bytes": total_bytes,
        "estimated_total_macs": total_macs,
        "achieved_bandwidth_gbps": achieved_bandwidth_gbps,
        "configured_memory_bandwidth_gbps": float(memory_bandwidth_gbps),
        "bandwidth_utilization": achieved_bandwidth_gbps / max(memory_bandwidth_gbps, 1e-9),
        "achieved_gmacs": achieved_gmacs,
        "arithmetic_intensity_macs_per_byte": total_macs / max(total_bytes, 1e-9),
    }
    if peak_compute_gmacs is not None:
        summary["configured_peak_compute_gmacs"] = float(peak_compute_gmacs)
        summary["compute_utilization"] = achieved_gmacs / max(peak_compute_gmacs, 1e-9)
    return summary


TRADEOFF_REQUIRED = (
    "precision",
    "accuracy",
    C.latency_ms,
    C.memory_mb,
    C.energy_proxy_j,
    "accepted",
)


TRADEOFF_COLUMNS = [
    "runtime",
    "precision",
    "candidates",
    "accuracy_mean",
    "latency_ms_mean",
    "latency_p50_ms_mean",
    "memory_mb_mean",
    "energy_proxy_j_mean",
    "accepted_ratio",
    "latency_ratio_vs_fp32",
    "latency_p50_ratio_vs_fp32",
    "size_ratio_vs_fp32",
]


def _ratio_vs_fp32(rows: pd.DataFrame, fp32: pd.DataFrame, column: str) -> float:
    """Median over pruning levels of rows/fp32 (means per level); one ratio of means when the
    table has no ``pruning_level``; NaN when the column is absent or nothing pairs up."""
    if column not in rows.columns:
        return float("nan")
    if C.pruning_level not in rows.columns:
        if fp32.empty:
            return float("nan")
        return float(rows[column].mean() / fp32[column].mean())
    mine = rows.groupby(C.pruning_level)[column].mean()
    base = fp32.groupby(C.pruning_level)[column].mean()
    common = mine.index.intersection(base.index)
    if len(common) == 0:
        return float("nan")
    return float((mine.loc[common] / base.loc[common]).median())


def precision_tradeoff_table(sweep_df: pd.DataFrame) -> pd.DataFrame:
    """Per runtime and precision, over successfully measured candidates: means, acceptance,
    and ratios against fp32 of the same runtime at the same pruning level (median over
    levels; < 1 means faster / smaller than that runtime's fp32; NaN when the runtime has no
    fp32 row).

    Only ``precision, accuracy, latency_ms, memory_mb, energy_proxy_j, accepted`` are needed.
    Optional columns are used when present: ``status`` (only ``ok`` rows count), ``runtime``
    (default ``eager``), ``pruning_level`` (without it, ratios compare overall means) and
    ``latency_p50_ms`` (without it, the p50 columns are NaN; ``latency_ratio_vs_fp32``
    compares mean latencies either way).

    Args:
        sweep_df: one row per candidate, as ``run_sweep`` returns.

    Returns:
        One row per (runtime, precision), grouped by runtime and sorted by mean latency
        within it, with ``TRADEOFF_COLUMNS``.

    Raises:
        KeyError: a required column is missing (the message lists them).
    """
    missing = [c for c in TRADEOFF_REQUIRED if c not in sweep_df.columns]
    if missing and not sweep_df.empty:
        raise KeyError(
            f"precision_tradeoff_table: sweep_df lacks column(s) {missing}; "
            f"it needs {list(TRADEOFF_REQUIRED)}"
        )
    ok = sweep_df
    if C.status in sweep_df.columns:
        ok = sweep_df[sweep_df[C.status] == "ok"]
    if ok.empty:
        return pd.DataFrame(columns=TRADEOFF_COLUMNS)
    if C.runtime not in ok.columns:
        ok = ok.assign(runtime="eager")
    has_p50 = C.latency_p50_ms in ok.columns
    table = ok.groupby(["runtime", "precision"], as_index=False, sort=False).agg(
        candidates=("accuracy", "size"),
        accuracy_mean=("accuracy", "mean"),
        latency_ms_mean=(C.latency_ms, "mean"),
        latency_p50_ms_mean=(C.latency_p50_ms if has_p50 else C.latency_ms, "mean"),
        memory_mb_mean=(C.memory_mb, "mean"),
        energy_proxy_j_mean=(C.energy_proxy_j, "mean"),
        accepted_ratio=("accepted", "mean"),
    )
    if not has_p50:
        table["latency_p50_ms_mean"] = float("nan")  # never a mean passed off as a p50
    ratios: dict[str, list[float]] = {C.latency_ms: [], C.latency_p50_ms: [], C.memory_mb: []}
    for runtime, precision in zip(table[C.runtime], table[C.precision], strict=True):
        rows = ok[(ok[C.precision] == precision) & (ok[C.runtime] == runtime)]
        # Each runtime against its own fp32: ONNX Runtime int8 vs ONNX Runtime fp32, never
        # vs eager fp32 (that would mix the runtime's speed into the precision's).
        fp32 = ok[(ok[C.precision] == "fp32") & (ok[C.runtime] == runtime)]
        for column, values in ratios.items():
            values.append(_ratio_vs_fp32(rows, fp32, column))
    table["latency_ratio_vs_fp32"] = ratios[C.latency_ms]
    table["latency_p50_ratio_vs_fp32"] = ratios[C.latency_p50_ms]
    table["size_ratio_vs_fp32"] = ratios[C.memory_mb]
    table = table.sort_values(["runtime", "latency_ms_mean"], kind="stable")
    return table.reset_index(drop=True)[TRADEOFF_COLUMNS]
