"""This machine's CPU as Linux describes it, on x86-64 and on Arm: the model, the ISA features
that decide which kernels run, and on an Arm board its cores and the board's own name.

x86 ``/proc/cpuinfo`` has ``model name`` and ``flags``. Arm has neither: it lists
``Features`` and a ``CPU part`` number per core, and the board names itself in
``/proc/device-tree/model`` (a Raspberry Pi also in a ``Model`` line). Torch-free: a device
node reads it too.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# ISA features that decide which precisions are fast (x86 flags, Arm Features).
X86_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
ARM_FEATURES = (
    "asimd",  # NEON
    "fphp",  # fp16 arithmetic (Armv8.2)
    "asimdhp",  # fp16 NEON arithmetic (Armv8.2)
    "asimddp",  # int8 dot product SDOT/UDOT (Armv8.2)
    "atomics",  # LSE atomics (Armv8.1): builds for Armv8.1+ need them
    "i8mm",  # int8 matrix multiply (Armv8.6)
    "bf16",  # bf16 arithmetic (Armv8.6)
    "sve",
    "sve2",
)
# Arm's CPU part numbers (``CPU implementer: 0x41``), as the Linux kernel lists them.
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0a": "Cortex-A75",
    "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1",
    "0xd0d": "Cortex-A77",
    "0xd40": "Neoverse-V1",
    "0xd41": "Cortex-A78",
    "0xd44": "Cortex-X1",
    "0xd46": "Cortex-A510",
    "0xd47": "Cortex-A710",
    "0xd48": "Cortex-X2",
    "0xd49": "Neoverse-N2",
    "0xd4f": "Neoverse-V2",
}
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")
ARM_MACHINES = ("aarch64", "arm64")


@dataclass(frozen=True)
class CpuDescription:
    """What edge-opt records about a CPU."""

    model: str  # "AMD EPYC 9R14 96-Core Processor"; "Raspberry Pi 4 Model B (4x Cortex-A72)"
    machine: str  # x86_64, aarch64
    features: frozenset[str]  # every flag or Feature the kernel lists
    cores: tuple[str, ...] = ()  # Arm: each core's name, in order
    board: str | None = None  # Arm: the board's own name (device tree)

    @property
    def is_arm(self) -> bool:
        return self.machine in ARM_MACHINES

    @property
    def isa(self) -> dict[str, bool]:
        """The kernel-deciding features of this architecture, each present or not."""
        names = ARM_FEATURES if self.is_arm else X86_FLAGS
        return {name: name in self.features for name in names}

    @property
    def native_fp16(self) -> bool:
        """fp16 arithmetic in hardware (x86 AVX512-FP16; Arm FEAT_FP16)."""
        return bool({"avx512_fp16", "fphp", "asimdhp"} & self.features)

    @property
    def lacks_armv81(self) -> bool:
        """An Armv8.0 core (no LSE atomics): code built for Armv8.1+ stops with SIGILL."""
        return self.is_arm and "atomics" not in self.features


def _field(text: str, key: str) -> str | None:
    match = re.search(rf"^{re.escape(key)}\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def parse_cpuinfo(text: str, machine: str, board: str | None = None) -> CpuDescription:
    """The description of ``/proc/cpuinfo``'s ``text`` on ``machine`` (pure)."""
    flags = _field(text, "flags") or _field(text, "Features") or ""
    features = frozenset(flags.split())
    if machine not in ARM_MACHINES:
        model = _field(text, "model name") or platform.processor() or "unknown CPU"
        return CpuDescription(model, machine, features)
    parts = re.findall(r"^CPU part\s*:\s*(\S+)", text, re.MULTILINE)
    cores = tuple(ARM_PARTS.get(p.lower(), f"Arm CPU part {p}") for p in parts)
    board = board or _field(text, "Model")
    counts = ", ".join(f"{n}x {name}" for name, n in Counter(cores).items()) or "Arm CPU"
    model = f"{board} ({counts})" if board else counts
    return CpuDescription(model, machine, features, cores, board)


def board_model(path: Path = DEVICE_TREE_MODEL) -> str | None:
    """The board's name from the device tree (a Raspberry Pi, a Jetson), if it has one."""
    try:
        name = path.read_bytes().rstrip(b"\x00").decode("utf-8", errors="replace").strip()
    except OSError:
        return None
    return name or None


def this_cpu() -> CpuDescription:
    """This machine's CPU (``/proc/cpuinfo`` and the device tree)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text, platform.machine(), board_model())


def logical_cpus() -> int:
    return os.cpu_count() or 1


# A multi-threaded fp32 convolution and matrix product, as training runs them: what dies
# when a torch build uses Armv8.1 instructions (LSE atomics) on an Armv8.0 core. Under an
# emulated Cortex-A72, PyPI's aarch64 torch 2.13.0 survives the convolution and dies in the
# 64x256x64 product on 2 threads (its BLAS, NVPL); on 1 thread it survives both.
PROBE = (
    "import torch; torch.set_num_threads({threads}); "
    "torch.nn.functional.conv2d(torch.ones(2, 16, 32, 32), torch.ones(16, 16, 3, 3)); "
    "torch.mm(torch.ones(64, 256), torch.ones(256, 64))"
)


def armv80_problem(
    threads: int, cpu: CpuDescription | None = None, code: str = PROBE
) -> str | None:
    """On an Armv8.0 core (a Raspberry Pi 4's Cortex-A72, a Jetson Nano's A57): whether this
    Python's torch can run there with ``threads`` threads, tried in a child process so that an
    illegal instruction kills the child, not the run. None when it can (or on other CPUs).
    """
    cpu = cpu or this_cpu()
    if not cpu.lacks_armv81:
        return None
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code.format(threads=threads)],
            capture_output=True,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None  # the run itself will say what is wrong
    if proc.returncode not in (-signal.SIGILL, 128 + signal.SIGILL):
        return None
    core = cpu.cores[0] if cpu.cores else "this core"
    return (
        f"this CPU ({core}, Armv8.0: no LSE atomics) cannot run this torch build with "
        f"{threads} thread(s): a test matrix product died with an illegal instruction "
        "(SIGILL). "
        "Install PyTorch's CPU-only aarch64 wheel (docs/install.md, Arm boards), or set "
        "train_threads: 1 and benchmark_threads: 1 and run with OMP_NUM_THREADS=1"
    )
