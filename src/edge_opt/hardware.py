"""Hardware analysis: per-layer bytes and MACs, achieved bandwidth, precision trade-offs.

Formulas (fixed by the specification, pinned by tests):
- conv MACs = batch x out_channels x out_h x out_w x (in_channels / groups) x k_h x k_w;
  linear MACs = batch x in_features x out_features.
- parameter_bytes = (weight + bias elements) x bytes per element;
  activation_bytes = output elements x bytes per element.
- ``summarize_hardware``: total_bytes = sum(parameter_bytes) + sum(activation_bytes);
  latency_s = max(latency_ms / 1000, 1e-9);
  achieved_bandwidth_gbps = total_bytes / latency_s / 1e9;
  bandwidth_utilization = achieved / max(configured, 1e-9);
  achieved_gmacs = total_macs / latency_s / 1e9.

These are modelled traffic figures (each byte counted once), not hardware counter readings.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from edge_opt.artifacts import atomic_save_figure, atomic_write_csv

LAYER_COLUMNS = ["layer", "output_elements", "parameter_bytes", "activation_bytes", "macs"]


@dataclass(frozen=True)
class LayerEstimate:
    """One conv or linear layer at a given batch size."""

    layer: str
    output_elements: int
    parameter_bytes: int
    activation_bytes: int
    macs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def conv2d_macs(module: nn.Conv2d, output_shape: torch.Size) -> int:
    batch, out_c, out_h, out_w = output_shape
    k_h, k_w = module.kernel_size
    return batch * out_c * out_h * out_w * (module.in_channels // module.groups) * k_h * k_w


def linear_macs(module: nn.Linear, output_shape: torch.Size) -> int:
    rows = int(torch.Size(output_shape).numel()) // module.out_features  # batch (x extra dims)
    return rows * module.in_features * module.out_features


def _parameter_elements(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def estimate_layerwise_stats(
    model: nn.Module,
    batch_size: int,
    input_shape: tuple[int, int, int] = (1, 28, 28),
    bytes_per_element: int | None = None,
) -> pd.DataFrame:
    """Per-layer output elements, parameter/activation bytes and MACs of conv and linear layers.

    Shapes come from one forward pass of zeros through a float copy of the model, so any
    CNN whose conv/linear layers are modules is covered; rows are named after the modules.

    Args:
        model: a float model (for a quantized candidate, pass its float architecture and
            ``bytes_per_element=1``).
        batch_size: batch the figures are computed for.
        input_shape: (C, H, W) of one input.
        bytes_per_element: bytes per value; default: the model's parameter element size.

    Returns:
        A DataFrame with columns ``layer, output_elements, parameter_bytes,
        activation_bytes, macs``, in execution order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: {batch_size} must be >= 1")
    if bytes_per_element is None:
        first = next(model.parameters(), None)
        bytes_per_element = first.element_size() if first is not None else 4
    float_model = copy.deepcopy(model).float().eval()
    names = {module: name for name, module in float_model.named_modules()}
    rows: list[LayerEstimate] = []

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            macs = conv2d_macs(module, output.shape)
        else:
            macs = linear_macs(module, output.shape)  # type: ignore[arg-type]
        elements = int(output.numel())
        rows.append(
            LayerEstimate(
                layer=names[module],
                output_elements=elements,
                parameter_bytes=_parameter_elements(module) * bytes_per_element,
                activation_bytes=elements * bytes_per_element,
                macs=int(macs),
            )
        )

    handles = [
        m.register_forward_hook(hook)
        for m in float_model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        with torch.inference_mode():
            float_model(torch.zeros(batch_size, *input_shape))
    finally:
        for handle in handles:
            handle.remove()
    return pd.DataFrame([r.to_dict() for r in rows], columns=LAYER_COLUMNS)


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


def precision_tradeoff_table(sweep_df: pd.DataFrame) -> pd.DataFrame:
    """Per precision, over successfully measured candidates: means, acceptance, and ratios
    against fp32 at the same pruning level (median over levels; < 1 means faster/smaller).
    """
    ok = sweep_df
    if "status" in sweep_df.columns:
        ok = sweep_df[sweep_df["status"] == "ok"]
    columns = [
        "precision",
        "candidates",
        "accuracy_mean",
        "latency_ms_mean",
        "latency_p50_ms_mean",
        "memory_mb_mean",
        "energy_proxy_j_mean",
        "accepted_ratio",
        "latency_p50_ratio_vs_fp32",
        "size_ratio_vs_fp32",
    ]
    if ok.empty:
        return pd.DataFrame(columns=columns)
    table = ok.groupby("precision", as_index=False, sort=False).agg(
        candidates=("accuracy", "size"),
        accuracy_mean=("accuracy", "mean"),
        latency_ms_mean=("latency_ms", "mean"),
        latency_p50_ms_mean=("latency_p50_ms", "mean"),
        memory_mb_mean=("memory_mb", "mean"),
        energy_proxy_j_mean=("energy_proxy_j", "mean"),
        accepted_ratio=("accepted", "mean"),
    )
    fp32 = ok[ok["precision"] == "fp32"].set_index("pruning_level")
    latency_ratio, size_ratio = [], []
    for precision in table["precision"]:
        rows = ok[ok["precision"] == precision].set_index("pruning_level")
        common = rows.index.intersection(fp32.index)
        if len(common) == 0:
            latency_ratio.append(float("nan"))
            size_ratio.append(float("nan"))
            continue
        latency_ratio.append(
            float(
                (rows.loc[common, "latency_p50_ms"] / fp32.loc[common, "latency_p50_ms"]).median()
            )
        )
        size_ratio.append(
            float((rows.loc[common, "memory_mb"] / fp32.loc[common, "memory_mb"]).median())
        )
    table["latency_p50_ratio_vs_fp32"] = latency_ratio
    table["size_ratio_vs_fp32"] = size_ratio
    return table.sort_values("latency_ms_mean").reset_index(drop=True)[columns]


def save_hardware_artifacts(
    output_dir: str | Path,
    layerwise_df: pd.DataFrame,
    precision_df: pd.DataFrame,
    summary: dict[str, Any],
) -> list[Path]:
    """Write layerwise_breakdown.csv, precision_tradeoffs.csv, hardware_summary.csv (UTF-8)
    and layerwise_activation_memory.png, layerwise_macs.png (180 dpi); returns the paths."""
    from matplotlib.figure import Figure  # imported here: `import edge_opt` stays light

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        atomic_write_csv(out / "layerwise_breakdown.csv", layerwise_df),
        atomic_write_csv(out / "precision_tradeoffs.csv", precision_df),
        atomic_write_csv(out / "hardware_summary.csv", pd.DataFrame([summary])),
    ]
    for column, scale, ylabel, title, name in (
        (
            "activation_bytes",
            1 / 1024,
            "activation memory (KiB)",
            "Activation memory per layer",
            "layerwise_activation_memory.png",
        ),
        ("macs", 1e-6, "MACs (millions)", "Compute per layer", "layerwise_macs.png"),
    ):
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        values = layerwise_df[column] * scale
        bars = ax.bar(layerwise_df["layer"], values, color="tab:blue")
        ax.bar_label(bars, fmt="%.3g")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        fig.tight_layout()
        paths.append(atomic_save_figure(out / name, fig, dpi=180))
    return paths
