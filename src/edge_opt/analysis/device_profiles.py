"""Device profiles: what a target can do, with where every figure comes from.

Every figure is a ``Figure(value, source)`` whose source is ``datasheet`` (the vendor's
number), ``published`` (a public measurement the note cites), ``measured`` (timed on this host
by ``analysis.devices.measure_host_profile``) or ``assumed`` (derived from public
specifications with the arithmetic in its note). ``host`` (and ``cpu``) is this machine,
measured on demand. Plugins add profiles through the ``edge_opt.devices`` entry-point group
(``docs/extending.md``). Importing this module imports no torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from edge_opt.errors import EdgeOptError
from edge_opt.infra.registry import Registry, check_name

SOURCES = ("datasheet", "published", "measured", "assumed", "unknown")
HOST_NAMES = ("host", "cpu")  # this machine, measured


@dataclass(frozen=True)
class Figure:
    value: float
    source: str  # datasheet | measured | assumed
    note: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"Figure source {self.source!r} is not one of {SOURCES}")


@dataclass(frozen=True)
class HardwareProfile:
    """A target device: bandwidth, peak MAC rates per dtype, caches, power."""

    name: str
    description: str
    memory_bandwidth_gbps: Figure
    peak_gmacs: dict[str, Figure]  # by dtype: fp32, fp16, bf16, int8
    l1d_kib: Figure
    l2_kib: Figure
    l3_kib: Figure
    active_power_watts: Figure
    idle_power_watts: Figure
    notes: tuple[str, ...] = field(default=())
    # For a measured profile: when, and how loaded the machine was (other processes' cores).
    measured: dict[str, Any] | None = None
    # Parts of a board's own name (``/proc/device-tree/model``) that identify it: running on
    # such a board, ``device: auto`` is this profile, and the target is measured, not projected.
    boards: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_name("device", self.name)  # part of column names (latency_ms_projected_<name>)
        if "fp32" not in self.peak_gmacs:
            raise ValueError(f"device {self.name!r}: peak_gmacs needs an fp32 figure")

    def knee_macs_per_byte(self, dtype: str) -> float:
        """Roofline knee: arithmetic intensity where compute and bandwidth limits meet."""
        return self.peak(dtype) / max(self.memory_bandwidth_gbps.value, 1e-9)

    def peak(self, dtype: str) -> float:
        """Peak GMAC/s of ``dtype``; an unknown figure draws rooflines at the fp32 peak (the
        latency projection refuses it: see ``known``)."""
        figure = self.peak_gmacs.get(dtype)
        if figure is None or not self.known(dtype):
            return self.peak_gmacs["fp32"].value
        return figure.value

    def known(self, dtype: str) -> bool:
        """Whether the peak of ``dtype`` has a source (datasheet, published, measured, or an
        explicit assumption): a precision whose figure is unknown is not projected."""
        figure = self.peak_gmacs.get(dtype)
        return figure is not None and figure.source != "unknown" and math.isfinite(figure.value)

    def with_bandwidth(self, gbps: float) -> HardwareProfile:
        """A copy whose bandwidth is the user's figure (config ``memory_bandwidth_gbps``)."""
        return replace(self, memory_bandwidth_gbps=Figure(gbps, "assumed", "config override"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEVICES: Registry[HardwareProfile | None] = Registry(
    "device", EdgeOptError, group="edge_opt.devices", entry_type=HardwareProfile
)


def fig(value: float, source: str, note: str = "") -> Figure:
    return Figure(float(value), source, note)


def unknown(note: str) -> Figure:
    return Figure(float("nan"), "unknown", note)


# ARMv8.0 cores (Cortex-A72 of the Pi 4, Cortex-A57 of the Jetson Nano) have no fp16 or bf16
# arithmetic and no int8 dot product. What that means for each precision's rate, with where
# it comes from:
_NO_FP16 = (
    "the fp32 rate: ARMv8.0 has no fp16 arithmetic (FEAT_FP16 arrives in Armv8.2, Arm "
    "Architecture Reference Manual), so fp16 is converted and computed in fp32"
)
_NO_BF16 = (
    "the fp32 rate: ARMv8.0 has no bf16 arithmetic (FEAT_BF16 arrives in Armv8.6, Arm "
    "Architecture Reference Manual), so bf16 is converted and computed in fp32"
)
_INT8_V80 = (
    "the fp32 rate, an upper bound: without SDOT (Armv8.2), int8 GEMM kernels widen int8 to "
    "int16 and accumulate with SMLAL (XNNPACK's qs8 neon-mlal-lane micro-kernels, "
    "vmlal_lane_s16): 4 int32 multiply-accumulates per instruction, as an fp32 FMLA, plus "
    "the widening"
)
# 4 x Cortex-A72 @ 1.5 GHz; a 128-bit NEON FMA pipe does 4 fp32 MACs per cycle.
DEVICES.register("raspberry-pi-4")(
    HardwareProfile(
        name="raspberry-pi-4",
        description="Raspberry Pi 4 Model B: 4x Cortex-A72 @ 1.5 GHz, LPDDR4-3200",
        memory_bandwidth_gbps=fig(4.3, "datasheet", "as the specification gives"),
        peak_gmacs={
            "fp32": fig(24.0, "datasheet", "4 cores x 1.5 GHz x 4 fp32 MAC/cycle (NEON FMA)"),
            "fp16": fig(24.0, "datasheet", _NO_FP16),
            "bf16": fig(24.0, "datasheet", _NO_BF16),
            "int8": fig(24.0, "assumed", _INT8_V80),
        },
        l1d_kib=fig(32, "datasheet"),
        l2_kib=fig(1024, "datasheet", "shared"),
        l3_kib=fig(0, "datasheet", "none"),
        active_power_watts=fig(6.4, "assumed", "published full-load board measurements"),
        idle_power_watts=fig(2.7, "assumed", "published idle board measurements"),
        boards=("Raspberry Pi 4 Model B",),
    )
)
# Jetson Nano: CPU path only (4x Cortex-A57 @ 1.43 GHz); its GPU is not modelled here.
DEVICES.register("jetson-nano")(
    HardwareProfile(
        name="jetson-nano",
        description="NVIDIA Jetson Nano (CPU path): 4x Cortex-A57 @ 1.43 GHz, LPDDR4 25.6 GB/s",
        memory_bandwidth_gbps=fig(25.6, "datasheet"),
        peak_gmacs={
            "fp32": fig(22.9, "datasheet", "4 cores x 1.43 GHz x 4 fp32 MAC/cycle (NEON FMA)"),
            "fp16": fig(22.9, "datasheet", _NO_FP16),
            "bf16": fig(22.9, "datasheet", _NO_BF16),
            "int8": fig(22.9, "assumed", _INT8_V80),
        },
        l1d_kib=fig(32, "datasheet"),
        l2_kib=fig(2048, "datasheet", "shared"),
        l3_kib=fig(0, "datasheet", "none"),
        active_power_watts=fig(10.0, "datasheet", "10 W power mode"),
        idle_power_watts=fig(1.25, "assumed", "published idle measurements"),
        notes=("GPU (128 Maxwell cores) not modelled: edge-opt projects CPU execution",),
        boards=("Jetson Nano",),
    )
)
DEVICES.register("desktop-ddr4")(
    HardwareProfile(
        name="desktop-ddr4",
        description="A desktop: 8 AVX2 cores @ 3.5 GHz, dual-channel DDR4",
        memory_bandwidth_gbps=fig(50.0, "datasheet", "as the specification gives"),
        peak_gmacs={
            "fp32": fig(448.0, "assumed", "8 cores x 3.5 GHz x 16 fp32 MAC/cycle (2 AVX2 FMA)"),
            "fp16": fig(448.0, "assumed", "fp16 converted to fp32 (F16C)"),
            "bf16": fig(448.0, "assumed", "bf16 converted to fp32"),
            "int8": fig(896.0, "assumed", "AVX2 vpmaddubsw: ~2x the fp32 MAC rate"),
        },
        l1d_kib=fig(32, "assumed"),
        l2_kib=fig(512, "assumed"),
        l3_kib=fig(32768, "assumed"),
        active_power_watts=fig(65.0, "assumed", "a typical desktop CPU TDP"),
        idle_power_watts=fig(10.0, "assumed"),
    )
)
for _host in HOST_NAMES:
    DEVICES.add(None, _host)  # this machine: measured on demand


def device_names() -> list[str]:
    return DEVICES.names()


def profile_from_dict(data: dict[str, Any]) -> HardwareProfile:
    """The inverse of ``HardwareProfile.to_dict``."""
    figures = {k: Figure(**v) for k, v in data.items() if isinstance(v, dict) and "source" in v}
    peaks = {k: Figure(**v) for k, v in data["peak_gmacs"].items()}
    return HardwareProfile(
        name=data["name"],
        description=data["description"],
        peak_gmacs=peaks,
        notes=tuple(data.get("notes", ())),
        measured=data.get("measured"),
        **figures,
    )
