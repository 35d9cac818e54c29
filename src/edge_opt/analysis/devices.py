"""Device profiles: what a target can do, with where every figure comes from.

Every figure is a ``Figure(value, source)`` whose source is ``datasheet`` (the vendor's
number), ``measured`` (timed on this host by ``measure_host_profile``) or ``assumed`` (derived
from public specifications with the arithmetic in its note). ``host`` is measured once per
CPU model, torch version and thread count and cached in ``~/.cache/edge-opt``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import torch

from edge_opt.errors import EdgeOptError
from edge_opt.infra.registry import Registry
from edge_opt.measure.noise import LoadProbe

SOURCES = ("datasheet", "published", "measured", "assumed", "unknown")


log = logging.getLogger(__name__)
HOST_PROFILE_MAX_AGE = timedelta(days=7)  # a host profile older than this is measured again
HOST_PROFILE_MAX_LOAD = 0.5  # ... and so is one taken while others used > half a core


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


DEVICES: Registry[HardwareProfile | None] = Registry("device", EdgeOptError)


def _fig(value: float, source: str, note: str = "") -> Figure:
    return Figure(float(value), source, note)


def _unknown(note: str) -> Figure:
    return Figure(float("nan"), "unknown", note)


# 4 x Cortex-A72 @ 1.5 GHz; a 128-bit NEON FMA pipe does 4 fp32 MACs per cycle; no fp16/bf16
# arithmetic and no int8 dot product (ARMv8.0): int8 runs through 16-bit multiply-accumulate.
DEVICES.register("raspberry-pi-4")(
    HardwareProfile(
        name="raspberry-pi-4",
        description="Raspberry Pi 4 Model B: 4x Cortex-A72 @ 1.5 GHz, LPDDR4-3200",
        memory_bandwidth_gbps=_fig(4.3, "datasheet", "as the specification gives"),
        peak_gmacs={
            "fp32": _fig(24.0, "datasheet", "4 cores x 1.5 GHz x 4 fp32 MAC/cycle (NEON FMA)"),
            "fp16": _unknown("no fp16 arithmetic on the A72 (ARMv8.0); no measured rate"),
            "bf16": _unknown("no bf16 arithmetic on the A72; no measured rate"),
            "int8": _unknown("no int8 dot product (ARMv8.0): the rate depends on the kernels"),
        },
        l1d_kib=_fig(32, "datasheet"),
        l2_kib=_fig(1024, "datasheet", "shared"),
        l3_kib=_fig(0, "datasheet", "none"),
        active_power_watts=_fig(6.4, "assumed", "published full-load board measurements"),
        idle_power_watts=_fig(2.7, "assumed", "published idle board measurements"),
    )
)
# Jetson Nano: CPU path only (4x Cortex-A57 @ 1.43 GHz); its GPU is not modelled here.
DEVICES.register("jetson-nano")(
    HardwareProfile(
        name="jetson-nano",
        description="NVIDIA Jetson Nano (CPU path): 4x Cortex-A57 @ 1.43 GHz, LPDDR4 25.6 GB/s",
        memory_bandwidth_gbps=_fig(25.6, "datasheet"),
        peak_gmacs={
            "fp32": _fig(22.9, "datasheet", "4 cores x 1.43 GHz x 4 fp32 MAC/cycle (NEON FMA)"),
            "fp16": _unknown("no fp16 arithmetic on the A57 CPU cores; no measured rate"),
            "bf16": _unknown("no bf16 arithmetic on the A57 CPU cores; no measured rate"),
            "int8": _unknown("no int8 dot product on the A57: the rate depends on the kernels"),
        },
        l1d_kib=_fig(32, "datasheet"),
        l2_kib=_fig(2048, "datasheet", "shared"),
        l3_kib=_fig(0, "datasheet", "none"),
        active_power_watts=_fig(10.0, "datasheet", "10 W power mode"),
        idle_power_watts=_fig(1.25, "assumed", "published idle measurements"),
        notes=("GPU (128 Maxwell cores) not modelled: edge-opt projects CPU execution",),
    )
)
DEVICES.register("desktop-ddr4")(
    HardwareProfile(
        name="desktop-ddr4",
        description="A desktop: 8 AVX2 cores @ 3.5 GHz, dual-channel DDR4",
        memory_bandwidth_gbps=_fig(50.0, "datasheet", "as the specification gives"),
        peak_gmacs={
            "fp32": _fig(448.0, "assumed", "8 cores x 3.5 GHz x 16 fp32 MAC/cycle (2 AVX2 FMA)"),
            "fp16": _fig(448.0, "assumed", "fp16 converted to fp32 (F16C)"),
            "bf16": _fig(448.0, "assumed", "bf16 converted to fp32"),
            "int8": _fig(896.0, "assumed", "AVX2 vpmaddubsw: ~2x the fp32 MAC rate"),
        },
        l1d_kib=_fig(32, "assumed"),
        l2_kib=_fig(512, "assumed"),
        l3_kib=_fig(32768, "assumed"),
        active_power_watts=_fig(65.0, "assumed", "a typical desktop CPU TDP"),
        idle_power_watts=_fig(10.0, "assumed"),
    )
)
DEVICES.register("host")(None)  # measured on demand


def device_names() -> list[str]:
    return DEVICES.names()


# -------------------------------------------------------------------------- the host itself
def _cache_kib(level_name: str) -> float:
    """Size of a cache level of cpu0 from sysfs (L1d, L2, L3), in KiB; 0 when unknown."""
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(base.glob("index*")) if base.is_dir() else []:
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        name = f"L{level}" + ("d" if kind == "Data" else "" if kind == "Unified" else "i")
        if name == level_name:
            return float(size.rstrip("K")) if size.endswith("K") else float(size.rstrip("M")) * 1024
    return 0.0


def _rate(fn: Any, work: float, seconds: float = 0.3) -> float:
    """Best rate (work per second) of ``fn`` over repeated calls for ``seconds``."""
    fn()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return work / best


def measure_host_profile(threads: int = 1, power_watts: float = 5.0) -> HardwareProfile:
    """Micro-benchmark this machine: matmul MAC rates per dtype and copy bandwidth (~3 s).

    The profile records when it was measured and how many cores other processes used
    meanwhile, so a profile taken under load can be recognised and measured again.
    """
    probe = LoadProbe()
    probe.start()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        n = 512
        a32, b32 = torch.randn(n, n), torch.randn(n, n)
        macs = float(n**3)
        fp32 = _rate(lambda: torch.mm(a32, b32), macs) / 1e9
        a16, b16 = a32.to(torch.bfloat16), b32.to(torch.bfloat16)
        bf16 = _rate(lambda: torch.mm(a16, b16), macs) / 1e9
        h16, g16 = a32.half(), b32.half()
        fp16 = _rate(lambda: torch.mm(h16, g16), macs, 0.2) / 1e9
        i8a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        i8b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        try:
            int8 = _rate(lambda: torch._int_mm(i8a, i8b), macs) / 1e9
            int8_fig = _fig(int8, "measured", f"torch._int_mm {n}x{n}, {threads} thread(s)")
        except RuntimeError as exc:
            int8_fig = _fig(fp32, "assumed", f"torch._int_mm unavailable ({exc}); fp32 rate")
        big = torch.empty(512 * 2**20 // 4)  # 512 MiB: past any cache (this VM reports 300 MiB L3)
        dst = torch.empty_like(big)
        bandwidth = _rate(lambda: dst.copy_(big), 2 * big.numel() * 4) / 1e9  # read + write
    finally:
        torch.set_num_threads(previous)
    note = f"{n}x{n} matmul, {threads} thread(s)"
    return HardwareProfile(
        name="host",
        description=f"this machine: {platform.processor() or platform.machine()}",
        memory_bandwidth_gbps=_fig(bandwidth, "measured", "512 MiB tensor copy (read+write)"),
        peak_gmacs={
            "fp32": _fig(fp32, "measured", note),
            "bf16": _fig(bf16, "measured", note),
            "fp16": _fig(fp16, "measured", note),
            "int8": int8_fig,
        },
        l1d_kib=_fig(_cache_kib("L1d"), "measured", "sysfs"),
        l2_kib=_fig(_cache_kib("L2"), "measured", "sysfs"),
        l3_kib=_fig(_cache_kib("L3"), "measured", "sysfs"),
        active_power_watts=_fig(power_watts, "assumed", "config power_watts"),
        idle_power_watts=_fig(0.0, "assumed", "unknown"),
        measured={
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "other_cpu_cores": probe.other_cores(),
            "load_average": list(os.getloadavg()),
        },
    )


def stale_reason(profile: HardwareProfile, now: datetime | None = None) -> str | None:
    """Why a cached host profile must be measured again, or None when it can be used."""
    info = profile.measured or {}
    try:
        when = datetime.fromisoformat(info["measured_at"])
    except (KeyError, TypeError, ValueError):
        return "it does not say when it was measured"
    age = (now or datetime.now(UTC)) - when
    if age > HOST_PROFILE_MAX_AGE:
        return f"it is {age.days} days old (limit {HOST_PROFILE_MAX_AGE.days})"
    other = info.get("other_cpu_cores")
    if other is not None and other > HOST_PROFILE_MAX_LOAD:
        return f"it was measured under load (other processes used {other:.2f} cores)"
    return None


def _cache_path(threads: int) -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-opt"
    key = f"{platform.processor() or platform.machine()}-{torch.__version__}-t{threads}"
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in key)
    return root / f"host_profile_{safe}.json"


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


def host_profile(
    threads: int = 1, power_watts: float = 5.0, refresh: bool = False
) -> HardwareProfile:
    """The measured host profile, from the cache when present (``refresh`` re-measures)."""
    path = _cache_path(threads)
    if path.is_file() and not refresh:
        try:
            profile = profile_from_dict(json.loads(path.read_text(encoding="utf-8")))
            reason = stale_reason(profile)
            if reason is None:
                return replace(
                    profile, active_power_watts=_fig(power_watts, "assumed", "config power_watts")
                )
            log.info("host profile: measuring again, the cached one is stale (%s)", reason)
        except (KeyError, TypeError, ValueError):
            pass  # a foreign or damaged cache: measure again
    profile = measure_host_profile(threads, power_watts)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(profile.to_dict(), indent=2), encoding="utf-8")
    except OSError:
        pass  # a read-only home still gets a (measured) profile
    return profile


def get_device_profile(
    name: str, threads: int = 1, power_watts: float = 5.0, refresh: bool = False
) -> HardwareProfile:
    """A registered profile; ``host`` (or ``cpu``) is measured on this machine.

    Raises:
        EdgeOptError: the name is not registered.
    """
    if name in ("host", "cpu"):
        return host_profile(threads, power_watts, refresh)
    profile = DEVICES.get(name)
    if profile is None:
        raise EdgeOptError(f"device {name!r} has no profile")
    return profile
