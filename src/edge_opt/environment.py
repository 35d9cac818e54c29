"""What a reader needs to trust or discount a number: host, ISA, versions, threads, load, commit."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import edge_opt
from edge_opt.energy import rapl_status

# ISA features that decide which precisions are fast on x86 (see HOST_NOTES.md).
ISA_FLAGS = (
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
PACKAGES = (
    "torch",
    "numpy",
    "pandas",
    "matplotlib",
    "pydantic",
    "PyYAML",
    "typer",
    "rich",
    "mlxtend",
    "torch-pruning",
    "onnx",
    "onnxruntime",
)
MALLOC_VARS = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "LD_PRELOAD",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def cpu_info() -> dict[str, Any]:
    """CPU model name and which of ``ISA_FLAGS`` it reports (Linux ``/proc/cpuinfo``)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model in ("unknown", "", platform.machine()):
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {
        "model": model,
        "logical_cpus": os.cpu_count(),
        "isa": {flag: flag in flags for flag in ISA_FLAGS},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def cpu_governor() -> str:
    """The cpufreq governor of cpu0, or why it cannot be read (VMs often hide it)."""
    path = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return f"unreadable ({path} is missing; frequency scaling is the hypervisor's)"


def git_commit(path: Path | None = None) -> dict[str, Any]:
    """Commit and dirty flag of the repository holding ``path`` (edge-opt's source by default)."""
    where = path or Path(edge_opt.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def describe_environment(benchmark_threads: int, quantized_engine: str) -> dict[str, Any]:
    """The environment record written to manifest.json."""
    return {
        "edge_opt_version": edge_opt.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "packages": package_versions(),
        "torch_threads_default": torch.get_num_threads(),
        "benchmark_threads": benchmark_threads,
        "quantized_engine": quantized_engine,
        "cpu_governor": cpu_governor(),
        "energy_counters": rapl_status(),
        "env": {name: os.environ.get(name) for name in MALLOC_VARS},
        "git": git_commit(),
        "command": sys.argv,
    }


def has_native_fp16(cpu: dict[str, Any]) -> bool:
    return bool(cpu.get("isa", {}).get("avx512_fp16"))
