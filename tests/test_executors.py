"""Executor settings that cannot work fail at once with one line (no Ray cluster needed)."""

from __future__ import annotations

import pytest

from edge_opt.config import build_config
from edge_opt.errors import ExecutorError
from edge_opt.executors import make_executor

pytest.importorskip("ray")


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1:1", r"executor.address: nothing answers at 127.0.0.1:1"),
        ("host:99999", r"executor.address: 'host:99999' is not HOST:PORT"),
        ("http://x:6379", r"nothing answers at http://x:6379|is not HOST:PORT"),
    ],
)
def test_an_address_nothing_answers_on_fails_in_seconds(address: str, message: str) -> None:
    spec = build_config({"executor": {"kind": "ray", "address": address}}).executor
    with pytest.raises(ExecutorError, match=message):
        make_executor(spec)


def test_the_local_executor_runs_tasks_in_order_and_has_no_device() -> None:
    executor = make_executor(build_config({}).executor)
    assert executor.kind == "local"
    assert executor.device_node("rpi4") is None
    assert list(executor.prepare(lambda shared, p: shared + p, 10, [1, 2])) == [(0, 11), (1, 12)]
