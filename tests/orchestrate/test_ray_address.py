"""An executor address that answers but is not Ray is refused in seconds (issue 20, item 3):
``ray.init`` would otherwise wait on it for minutes, deaf to SIGTERM."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from edge_opt.errors import ExecutorError
from edge_opt.orchestrate.executors.ray import CONNECT_TIMEOUT_S, _check_reachable


def serve(reply: bytes | None) -> tuple[str, threading.Event]:
    """A real TCP server on 127.0.0.1 that accepts, then says ``reply`` (None: nothing)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()

    def run() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            if reply is not None:
                conn.recv(1024)
                conn.sendall(reply)
            stop.wait(CONNECT_TIMEOUT_S + 2)
            conn.close()
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}", stop


@pytest.mark.parametrize(
    "reply", [None, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", b"+OK redis\r\n"]
)
def test_an_address_that_answers_but_is_not_ray_is_refused_in_seconds(reply) -> None:
    address, stop = serve(reply)
    started = time.monotonic()
    try:
        with pytest.raises(ExecutorError, match="answers but is not a Ray head"):
            _check_reachable(address)
    finally:
        stop.set()
    assert time.monotonic() - started < CONNECT_TIMEOUT_S + 5


def test_a_real_ray_head_passes_the_check() -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    try:
        _check_reachable(cluster.address)  # raises if the GCS did not answer as gRPC does
    finally:
        cluster.shutdown()
