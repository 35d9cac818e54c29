"""The executor interface (two methods, like a host and a target), its registry, and the
description of a node as the node itself reports it. Torch-free: device nodes import it."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from edge_opt.infra.cpu import this_cpu

if TYPE_CHECKING:
    from edge_opt.config.sections import ExecutorSpec

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
