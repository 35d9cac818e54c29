"""The local executor: every task in this process, one after the other."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from edge_opt.config.sections import ExecutorSpec
from edge_opt.errors import ConfigError
from edge_opt.orchestrate.executors.base import NodeInfo


class LocalExecutor:
    """Runs a task in this process when asked for its result: the driver gets live objects."""

    kind = "local"
    distributed = False

    def __init__(self, spec: ExecutorSpec | None = None) -> None:
        self.spec = spec

    def prepare(
        self, fn: Callable[..., Any], shared: Any, payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        for index, payload in enumerate(payloads):
            yield index, fn(shared, payload)

    def measure(
        self, resource: str, fn: Callable[..., Any], payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        raise ConfigError(
            [f"executor.device_resource: {resource!r} needs `executor: {{kind: ray}}`"]
        )

    def device_node(self, resource: str) -> NodeInfo | None:
        return None

    def close(self) -> None:
        return None
