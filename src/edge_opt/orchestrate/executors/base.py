"""The executor interface (two methods, like a host and a target), its registry, and the
description of a node as the node itself reports it. Torch-free: device nodes import it."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from edge_opt.infra.cpu import this_cpu

if TYPE_CHECKING:
    from edge_opt.config.sections import ExecutorSpec

RAY_TMP = Path(os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()) / "ray"
# ISA extensions that decide which kernels run (x86 flags, Arm "Features").
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "neon",
    "asimd",
    "asimddp",
    "fphp",
    "asimdhp",
    "i8mm",
    "bf16",
    "sve",
)


@dataclass(frozen=True)
class NodeInfo:
    """A machine as it describes itself: what a row's ``measured_on`` names."""

    node_id: str
    hostname: str
    machine: str  # x86_64, aarch64, ...
    cpu_model: str
    isa: tuple[str, ...]
    cpus: int

    def describe(self) -> str:
        isa = " ".join(self.isa) or "no listed ISA extensions"
        return f"{self.hostname} [{self.node_id[:12]}] ({self.cpu_model}; {self.machine}; {isa})"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["isa"] = list(self.isa)
        return data

    @staticmethod
    def from_dict(data: dict[str, Any]) -> NodeInfo:
        return NodeInfo(
            str(data["node_id"]),
            str(data["hostname"]),
            str(data["machine"]),
            str(data["cpu_model"]),
            tuple(str(x) for x in data["isa"]),
            int(data["cpus"]),
        )


def this_node(node_id: str = "local") -> NodeInfo:
    """This machine's description, read from ``/proc/cpuinfo`` (no torch, no Ray)."""
    cpu = this_cpu()
    return NodeInfo(
        node_id=node_id,
        hostname=socket.gethostname(),
        machine=cpu.machine,
        cpu_model=cpu.model,
        isa=tuple(f for f in ISA_FLAGS if f in cpu.features),
        cpus=os.cpu_count() or 1,
    )


@dataclass(frozen=True)
class TaskFailure:
    """A task that did not finish after its retries: where, and why."""

    node: str
    reason: str

    def describe(self) -> str:
        return f"task failed on node {self.node}: {self.reason}"


class Executor(Protocol):
    """Runs prepare tasks (anywhere with CPUs) and measure tasks (only on a target device).

    Both yield ``(index, result or TaskFailure)`` as tasks finish, in any order; a failure of
    one task never stops the others.
    """

    kind: str
    distributed: bool

    def prepare(
        self, fn: Callable[..., Any], shared: Any, payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]: ...

    def measure(
        self, resource: str, fn: Callable[..., Any], payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]: ...

    def device_node(self, resource: str) -> NodeInfo | None: ...

    def close(self) -> None: ...


def make_executor(spec: ExecutorSpec) -> Executor:
    """The executor ``spec`` asks for (its module imported only now: Ray only for ``ray``)."""
    from edge_opt.orchestrate.executors.registry import EXECUTORS

    return EXECUTORS.get(spec.kind).load_factory()(spec)  # type: ignore[no-any-return]


def auto_cluster_problem(
    spec: ExecutorSpec, ray_tmp: Path = RAY_TMP, proc: Path = Path("/proc")
) -> str | None:
    """``executor: {kind: ray, address: auto}`` with no Ray cluster this machine can see: the
    one-line reason, found before a run directory is made (None: there may be one).

    Ray's ``auto`` connects to ``RAY_ADDRESS``, the address the last ``ray start`` left in
    ``<tmp>/ray/ray_current_cluster``, or a running ``gcs_server``; with none of the three it
    can only fail.
    """
    if spec.kind != "ray" or spec.address != "auto":
        return None
    if os.environ.get("RAY_ADDRESS") or (ray_tmp / "ray_current_cluster").is_file():
        return None
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            if b"gcs_server" in cmdline.read_bytes():
                return None
        except OSError:
            continue
    return (
        "executor.address: auto finds no running Ray cluster on this machine (no RAY_ADDRESS, "
        f"no {ray_tmp / 'ray_current_cluster'}, no gcs_server process); start one with "
        "`ray start --head`, give its HOST:PORT, or use `address: local` for an embedded Ray"
    )
