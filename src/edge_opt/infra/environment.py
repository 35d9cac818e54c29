"""What a reader needs to trust or discount a number: host, ISA, versions, threads, load, commit."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import edge_opt
from edge_opt.infra.cpu import this_cpu

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
)
MALLOC_VARS = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "LD_PRELOAD",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def cpu_info() -> dict[str, Any]:
    """The CPU's model, its kernel-deciding ISA features (x86 flags or Arm Features), and on
    an Arm board its cores and name (``infra.cpu``)."""
    cpu = this_cpu()
    info: dict[str, Any] = {
        "model": cpu.model,
        "machine": cpu.machine,
        "logical_cpus": os.cpu_count(),
        "isa": cpu.isa,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    if cpu.is_arm:
        info["board"] = cpu.board
        info["cores"] = list(cpu.cores)
    return info


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


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Versions of edge-opt's dependencies and of ``extra`` ones (the runtimes' libraries);
    None for one not installed."""
    versions: dict[str, str | None] = {}
    for name in dict.fromkeys((*PACKAGES, *extra)):
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


# Variables that change which kernels torch, oneDNN and MKL pick (or how they round).
KERNEL_VARS = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE",
)


def _library_versions() -> dict[str, str | None]:
    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version (\S+)", config)
    onednn = re.search(r"MKL-DNN v(\S+)", config)
    return {"mkl": mkl.group(1) if mkl else None, "onednn": onednn.group(1) if onednn else None}


def _torch_sees(name: str) -> bool | None:
    probe = getattr(torch.cpu, f"_is_{name}_supported", None)
    return bool(probe()) if callable(probe) else None


def kernel_dispatch(quantized_engine: str, train_threads: int | None = None) -> dict[str, Any]:
    """What decides which kernels ran, so two machines' differing figures can be explained.

    Float kernels follow torch's CPU capability (ATen's vectorised code) and oneDNN/MKL's own
    ISA dispatch; int8 follows the quantized engine, and torch's ``x86`` engine runs int8
    convolutions through oneDNN when it sees AVX512-VNNI and through FBGEMM otherwise. The
    trained weights also depend on ``train_threads`` (gradient sums are split per thread).
    """
    sees = {name: _torch_sees(name) for name in ("avx2", "avx512", "vnni", "avx512_bf16")}
    sees["amx_tile"] = _torch_sees("amx_tile")
    if quantized_engine == "x86":
        int8_conv = "oneDNN (AVX512-VNNI seen)" if sees["vnni"] else "FBGEMM (no AVX512-VNNI)"
    else:
        int8_conv = {"fbgemm": "FBGEMM", "onednn": "oneDNN", "qnnpack": "QNNPACK"}.get(
            quantized_engine, quantized_engine
        )
    return {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_sees": sees,
        "quantized_engine": quantized_engine,
        "int8_conv_kernels": int8_conv,
        "train_threads": train_threads,
        **_library_versions(),
        "env": {name: os.environ.get(name) for name in KERNEL_VARS},
    }


def describe_environment(
    benchmark_threads: int,
    quantized_engine: str,
    train_threads: int | None = None,
    packages: tuple[str, ...] = (),
    energy_counters: str | None = None,
) -> dict[str, Any]:
    """The environment record written to manifest.json; ``energy_counters``: whether RAPL
    counters can be read (``measure.energy.rapl_status``)."""
    return {
        "edge_opt_version": edge_opt.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "packages": package_versions(packages),
        "torch_threads_default": torch.get_num_threads(),
        "benchmark_threads": benchmark_threads,
        "quantized_engine": quantized_engine,
        "kernels": kernel_dispatch(quantized_engine, train_threads),
        "cpu_governor": cpu_governor(),
        "energy_counters": energy_counters,
        "env": {name: os.environ.get(name) for name in MALLOC_VARS},
        "git": git_commit(),
        "command": sys.argv,
    }


def has_native_fp16(cpu: dict[str, Any]) -> bool:
    """fp16 arithmetic in hardware: x86 AVX512-FP16, Arm FEAT_FP16 (``fphp``/``asimdhp``)."""
    isa = cpu.get("isa", {})
    return any(isa.get(flag) for flag in ("avx512_fp16", "fphp", "asimdhp"))
