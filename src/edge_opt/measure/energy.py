"""Energy: the modelled proxy (latency x power) and, where the host exposes them, RAPL counters.

The proxy is what the specification asks for and what every row has; ``energy_measured_j`` is
filled only from real counters (``/sys/class/powercap/intel-rapl*``), package-wide, so it
includes whatever else the CPU did during the timed calls.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class PowerSource:
    """Power figure used by the energy proxy, and where it came from."""

    watts: float
    source: str


def power_source(power_watts: float) -> PowerSource:
    """The one place the proxy's power figure is decided (device presets will plug in here)."""
    return PowerSource(float(power_watts), "config power_watts (assumed)")


def energy_proxy_j(latency_ms: float, power_watts: float) -> float:
    """Modelled energy per call: latency_s x power_watts (not a measurement of power)."""
    return (latency_ms / 1000.0) * power_watts


def _package_domains(root: Path = POWERCAP) -> list[Path]:
    if not root.is_dir():
        return []
    domains = [p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1]
    return sorted(p for p in domains if (p / "energy_uj").is_file())


def rapl_status(root: Path = POWERCAP) -> str:
    """``available (N package domains)`` or why not."""
    if platform.machine() in ("aarch64", "arm64"):
        return "unavailable: RAPL is an x86 (Intel, AMD) interface, an Arm board has none"
    if not root.is_dir():
        return f"unavailable: {root} does not exist (virtual machines usually hide RAPL)"
    domains = _package_domains(root)
    if not domains:
        return f"unavailable: no readable intel-rapl package domain under {root}"
    try:
        for domain in domains:
            int((domain / "energy_uj").read_text())
    except (OSError, ValueError) as exc:
        return f"unavailable: cannot read {domains[0]}/energy_uj ({exc})"
    return f"available ({len(domains)} package domain(s))"


class RaplReader:
    """Cumulative package energy in joules, wrap-around corrected; ``None`` when unavailable."""

    def __init__(self, root: Path = POWERCAP) -> None:
        self.domains = _package_domains(root) if rapl_status(root).startswith("available") else []
        self._ranges = [self._read(d / "max_energy_range_uj") or 2**32 for d in self.domains]
        self._last = [self._read(d / "energy_uj") for d in self.domains]
        self._total_uj = 0

    @staticmethod
    def _read(path: Path) -> int | None:
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            return None

    @property
    def available(self) -> bool:
        return bool(self.domains)

    def __call__(self) -> float | None:
        if not self.domains:
            return None
        for i, domain in enumerate(self.domains):
            now = self._read(domain / "energy_uj")
            last = self._last[i]
            if now is None or last is None:
                return None
            self._total_uj += now - last if now >= last else now + self._ranges[i] - last
            self._last[i] = now
        return self._total_uj / 1e6
