"""The host's own profile, measured (matmul rates per dtype, copy bandwidth), and the target
profile a run asks for (``analysis.device_profiles`` holds the registered ones).

``host`` is measured once per CPU model, torch version and thread count and cached in
``~/.cache/edge-opt``; a cached profile that is old or was taken under load is measured again.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import torch

from edge_opt.analysis.device_profiles import (
    DEVICES,
    HOST_NAMES,
    Figure,
    HardwareProfile,
    fig,
    profile_from_dict,
)
from edge_opt.errors import EdgeOptError
from edge_opt.measure.noise import LoadProbe

log = logging.getLogger(__name__)
HOST_PROFILE_MAX_AGE = timedelta(days=7)  # a host profile older than this is measured again
HOST_PROFILE_MAX_LOAD = 0.5  # ... and so is one taken while others used > half a core


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


def _dtype_rate(fn: Any, macs: float, seconds: float, dtype: str, fp32: Figure) -> Figure:
    """The measured GMAC/s of ``fn``, or, when this CPU's kernels refuse the dtype (oneDNN has
    no bf16 matmul on an Armv8.0 core), the fp32 rate marked assumed, saying why."""
    try:
        return fig(_rate(fn, macs, seconds) / 1e9, "measured", fp32.note)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:120]
        return fig(fp32.value, "assumed", f"{dtype} matmul failed here ({first}); fp32 rate")


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
        fp32_fig = fig(fp32, "measured", f"{n}x{n} matmul, {threads} thread(s)")
        a16, b16 = a32.to(torch.bfloat16), b32.to(torch.bfloat16)
        bf16_fig = _dtype_rate(lambda: torch.mm(a16, b16), macs, 0.3, "bf16", fp32_fig)
        h16, g16 = a32.half(), b32.half()
        fp16_fig = _dtype_rate(lambda: torch.mm(h16, g16), macs, 0.2, "fp16", fp32_fig)
        i8a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        i8b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        try:
            int8 = _rate(lambda: torch._int_mm(i8a, i8b), macs) / 1e9
            int8_fig = fig(int8, "measured", f"torch._int_mm {n}x{n}, {threads} thread(s)")
        except RuntimeError as exc:
            int8_fig = fig(fp32, "assumed", f"torch._int_mm unavailable ({exc}); fp32 rate")
        big = torch.empty(512 * 2**20 // 4)  # 512 MiB: past any cache (this VM reports 300 MiB L3)
        dst = torch.empty_like(big)
        bandwidth = _rate(lambda: dst.copy_(big), 2 * big.numel() * 4) / 1e9  # read + write
    finally:
        torch.set_num_threads(previous)
    return HardwareProfile(
        name="host",
        description=f"this machine: {platform.processor() or platform.machine()}",
        memory_bandwidth_gbps=fig(bandwidth, "measured", "512 MiB tensor copy (read+write)"),
        peak_gmacs={"fp32": fp32_fig, "bf16": bf16_fig, "fp16": fp16_fig, "int8": int8_fig},
        l1d_kib=fig(_cache_kib("L1d"), "measured", "sysfs"),
        l2_kib=fig(_cache_kib("L2"), "measured", "sysfs"),
        l3_kib=fig(_cache_kib("L3"), "measured", "sysfs"),
        active_power_watts=fig(power_watts, "assumed", "config power_watts"),
        idle_power_watts=fig(0.0, "assumed", "unknown"),
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
                    profile, active_power_watts=fig(power_watts, "assumed", "config power_watts")
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
    if name in HOST_NAMES:
        return host_profile(threads, power_watts, refresh)
    profile = DEVICES.get(name)
    if profile is None:
        raise EdgeOptError(f"device {name!r} has no profile")
    return profile
