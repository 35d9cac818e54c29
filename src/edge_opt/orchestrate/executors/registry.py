"""The executors edge-opt can hand a run's tasks to: one entry per ``executor.kind``.
Importing this module imports neither torch nor Ray (the config validates against it)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_opt.errors import ExecutorError
from edge_opt.infra.registry import Registry


@dataclass(frozen=True)
class ExecutorKind:
    """An executor: how to make one (``"module:factory"``, called with the config's
    ``executor`` section), whether its tasks leave this process, and what installs it."""

    name: str
    factory: str
    description: str
    distributed: bool
    extra: str | None = None

    def load_factory(self) -> Callable[[Any], Any]:
        module, _, attr = self.factory.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        except ImportError as exc:
            hint = f"; install it with pip install 'edge-opt[{self.extra}]'" if self.extra else ""
            raise ExecutorError(
                f"executor.kind: {self.name!r} cannot be used here ({exc}){hint}"
            ) from None


EXECUTORS: Registry[ExecutorKind] = Registry("executor", ExecutorError, entry_type=ExecutorKind)
for _kind in (
    ExecutorKind(
        "local",
        "edge_opt.orchestrate.executors.local:LocalExecutor",
        "every task in this process, one after the other (Ray is not imported)",
        distributed=False,
    ),
    ExecutorKind(
        "ray",
        "edge_opt.orchestrate.executors.ray:RayExecutor",
        "prepare tasks over a Ray cluster; measure tasks on the target device's node",
        distributed=True,
        extra="ray",
    ),
):
    EXECUTORS.add(_kind)
