"""Hardware files of a run: the layer tables and their plots, the operator profiles, the
roofline (computed in ``analysis``; written here, each file atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from edge_opt.analysis.device_profiles import HardwareProfile
from edge_opt.analysis.profiling import HardwareProfileTable
from edge_opt.infra.artifacts import atomic_save_figure, atomic_write_csv, atomic_write_json
from edge_opt.reports.plots import place_labels


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


def write_hardware_profile_artifacts(
    profile: HardwareProfileTable, output_dir: str | Path
) -> list[Path]:
    """Write operator_profile.csv, hardware_totals.csv and hardware_profile.json."""
    out = Path(output_dir)
    return [
        atomic_write_csv(out / "operator_profile.csv", profile.operator_frame()),
        atomic_write_csv(out / "hardware_totals.csv", pd.DataFrame([profile.totals])),
        atomic_write_json(out / "hardware_profile.json", profile.to_dict()),
    ]


_ROOF_STYLES = (("fp32", "tab:blue", "-"), ("bf16", "tab:green", "--"), ("int8", "tab:red", ":"))


def _roofs(ax: Any, profile: HardwareProfile, x: Any, label: str, color: str | None) -> None:
    """One roof per dtype, labelled ``label`` with ``DTYPE`` replaced: the device's in colour,
    the host's (``color`` given) thin grey."""
    import numpy as np

    for dtype, own_color, style in _ROOF_STYLES:
        roof = np.minimum(profile.peak(dtype), x * profile.memory_bandwidth_gbps.value)
        ax.plot(
            x,
            roof,
            color=color or own_color,
            linestyle=style,
            linewidth=1.0 if color else 1.8,
            alpha=0.7 if color else 1.0,
            label=label.replace("DTYPE", dtype),
        )


def _points(ax: Any, frame: pd.DataFrame, y: str, name: str, **style: Any) -> list[Any]:
    """Scatter ``frame``'s (intensity, ``y``) points; returns their (name, x, y) labels."""
    ax.scatter(frame["intensity_macs_per_byte"], frame[y], **style)
    return [(str(row[name]), row["intensity_macs_per_byte"], row[y]) for _, row in frame.iterrows()]


def plot_roofline(
    device: HardwareProfile,
    layers: pd.DataFrame,
    candidates: pd.DataFrame,
    path: str | Path,
    host: HardwareProfile | None = None,
) -> Path:
    """Roofline of ``device`` per dtype with the baseline's layers (dots, at their attainable
    rate there); whole candidates (crosses) at the rate they achieved on this host, read
    against the host's roofs (grey) when ``host`` is given."""
    import numpy as np
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(8.5, 5.5))
    ax = fig.subplots()
    x = np.logspace(-1, 3, 200)
    _roofs(ax, device, x, device.name + " DTYPE roof", None)
    if host is not None and host.name != device.name:
        _roofs(ax, host, x, "this host DTYPE roof (measured)", "gray")
    labels: list[Any] = []
    if not layers.empty:
        labels += _points(
            ax,
            layers,
            "attainable_gmacs",
            "layer",
            color="black",
            s=18,
            label="baseline layers (attainable)",
        )
    if not candidates.empty:
        labels += _points(
            ax,
            candidates,
            "achieved_gmacs",
            "candidate_id",
            marker="x",
            color="tab:purple",
            s=30,
            label="candidates (achieved on this host)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (MAC / byte, modelled traffic)")
    ax.set_ylabel("GMAC/s")
    title = f"Roofline: {device.name} (modelled roofs)"
    if host is not None and host.name != device.name:
        title += "; crosses: achieved on this host, not on the target"
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    legend = ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    # Each label where it overlaps no other label and no point; one that fits nowhere is named
    # in the legend instead of drawn over another.
    unplaced = place_labels(ax, labels)
    if unplaced:
        from matplotlib.lines import Line2D

        handles = [*legend.legend_handles]
        handles.append(Line2D([], [], linestyle="none", label="unlabelled: " + ", ".join(unplaced)))
        legend.remove()
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return atomic_save_figure(path, fig, dpi=180)
