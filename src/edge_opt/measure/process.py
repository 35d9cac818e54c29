"""The timing process's own state: glibc's allocator made stable, torch's thread count fixed
for a block, the load average. Torch is optional (a device node has none)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

try:  # a device node that measures ONNX Runtime candidates has no torch
    import torch
except ImportError:  # pragma: no cover - tests/orchestrate/test_device_worker.py
    torch = None  # type: ignore[assignment]

M_TRIM_THRESHOLD = -1  # glibc mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
STABLE_THRESHOLD_BYTES = 1 << 30
_ALLOCATOR_STATE: dict[str, Any] | None = None


def stabilize_allocator() -> dict[str, Any]:
    """Keep freed memory in glibc's heap instead of mmap/munmap per call (idempotent).

    Same effect as starting the process with ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` set to 1 GiB, but applied in-process so every entry point
    benefits. Returns what was done, for the manifest.
    """
    global _ALLOCATOR_STATE
    if _ALLOCATOR_STATE is not None:
        return _ALLOCATOR_STATE
    state: dict[str, Any] = {"method": "none", "mmap_threshold": None, "trim_threshold": None}
    env = {k: os.environ.get(k) for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    if os.environ.get("LD_PRELOAD"):
        state["method"] = f"LD_PRELOAD={os.environ['LD_PRELOAD']} (left as is)"
    else:
        libc_name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(libc_name or "libc.so.6")
            ok_mmap = bool(libc.mallopt(M_MMAP_THRESHOLD, STABLE_THRESHOLD_BYTES))
            ok_trim = bool(libc.mallopt(M_TRIM_THRESHOLD, STABLE_THRESHOLD_BYTES))
            state.update(
                method="glibc mallopt" if ok_mmap and ok_trim else "glibc mallopt (refused)",
                mmap_threshold=STABLE_THRESHOLD_BYTES if ok_mmap else None,
                trim_threshold=STABLE_THRESHOLD_BYTES if ok_trim else None,
            )
        except (OSError, AttributeError):
            state["method"] = "unavailable (not glibc)"
    state["env"] = env
    _ALLOCATOR_STATE = state
    return state


def single_arena() -> bool:
    """Make every thread this process starts from now on allocate from glibc's main arena
    (``mallopt(M_ARENA_MAX, 1)``); False where that is not possible.

    With the 1 GiB trim threshold (``stabilize_allocator``) a thread arena never hands back
    the free memory at its top, and ``malloc_trim`` does not trim it either: after a default
    run's evaluation threads and probe lanes, 7 thread arenas kept 210 MiB resident and 98%
    free (measured). One arena is trimmed whole. Threads that allocate at once share its lock:
    evaluation batches on two threads and training's kernels allocate a few tensors per batch.
    """
    if os.environ.get("LD_PRELOAD"):
        return False
    try:
        return bool(_libc().mallopt(M_ARENA_MAX, 1))
    except (OSError, AttributeError):
        return False


def release_free_heap() -> bool:
    """Hand the heap's free pages back to the kernel (glibc ``malloc_trim(0)``); False where
    that is not possible (not glibc, or an ``LD_PRELOAD`` allocator, left as is).

    ``stabilize_allocator`` keeps freed memory in the heap for good (a 1 GiB trim threshold),
    which timing needs, but then every transient of a run (decoding the data, training
    batches, evaluation buffers) stays resident to its end. A run calls this between its
    stages: the pages come back on first touch (a few ms for a stage's working set), and a
    timed call, warmed up first, finds them there. Without ``stabilize_allocator`` it is a
    no-op in effect (glibc trims by itself).
    """
    if os.environ.get("LD_PRELOAD"):
        return False
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):
        return False
    return True


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Fix torch's intra-op thread count for a block, then restore it (no-op without torch)."""
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
