"""The local executor: every task in this process, one after the other."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from edge_opt.config.sections import ExecutorSpec
from edge_opt.errors import ConfigError
from edge_opt.orchestrate.executors.base import NodeInfo, register_executor


class LocalExecutor:
    kind = "local"
    distributed = False

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


@register_executor("local")
def _local(spec: ExecutorSpec) -> LocalExecutor:
    return LocalExecutor()
