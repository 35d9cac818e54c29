"""Executor settings that cannot work fail at once with one line (no Ray cluster needed)."""

from __future__ import annotations

import time

import pytest

from edge_opt.config.loading import build_config
from edge_opt.errors import ConfigError, ExecutorError
from edge_opt.orchestrate.executors.base import make_executor

pytest.importorskip("ray")


def test_an_address_nothing_answers_on_fails_in_seconds() -> None:
    spec = build_config({"executor": {"kind": "ray", "address": "127.0.0.1:1"}}).executor
    start = time.monotonic()
    with pytest.raises(ExecutorError, match=r"executor.address: nothing answers at 127.0.0.1:1"):
        make_executor(spec)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("address", ["host:99999", "http://x:6379", "head", ":6379"])
def test_a_malformed_address_is_a_config_error(address: str) -> None:
    # Caught when the config is read (edge-opt validate), before any connection is tried.
    with pytest.raises(ConfigError, match=r"is not `auto`, `local` or HOST:PORT"):
        build_config({"executor": {"kind": "ray", "address": address}})


def test_the_local_executor_runs_tasks_in_order_and_has_no_device() -> None:
    executor = make_executor(build_config({}).executor)
    assert executor.kind == "local"
    assert executor.device_node("rpi4") is None
    assert list(executor.prepare(lambda shared, p: shared + p, 10, [1, 2])) == [(0, 11), (1, 12)]


def test_ray_auto_without_a_cluster_is_refused_before_any_run_directory(
    tmp_path, monkeypatch
) -> None:
    from edge_opt.config.sections import ExecutorSpec
    from edge_opt.orchestrate.executors.base import auto_cluster_problem

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    spec = ExecutorSpec(kind="ray", address="auto")
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "cmdline").write_bytes(b"/usr/bin/python\x00x.py")
    problem = auto_cluster_problem(spec, tmp_path / "ray", tmp_path / "proc")
    assert problem is not None
    assert problem.startswith("executor.address: auto finds no running Ray cluster")
    (tmp_path / "proc" / "2").mkdir()
    (tmp_path / "proc" / "2" / "cmdline").write_bytes(b"/x/ray/core/src/ray/gcs/gcs_server\x00")
    assert auto_cluster_problem(spec, tmp_path / "ray", tmp_path / "proc") is None
    assert auto_cluster_problem(ExecutorSpec(kind="ray", address="local")) is None
    assert auto_cluster_problem(ExecutorSpec()) is None
