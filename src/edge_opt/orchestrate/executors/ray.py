"""The Ray executor: prepare tasks over every CPU of a cluster, measure tasks on the device.

Prepare tasks ask for ``cpus_per_task`` CPUs (their torch threads are pinned to that), so Ray
never runs more of them on a node than it has CPUs. Measure tasks ask for one unit of the
device's custom resource and no CPU: a device node started with ``--num-cpus=0
--resources='{"NAME": 1}'`` runs exactly one measure task at a time and never a prepare task.
A task whose worker or node dies is retried ``max_retries`` times, then reported as a
``TaskFailure`` naming the node. Ray's token authentication is left as Ray sets it (on by
default for local clusters since Ray 2.59); an embedded Ray (``address: local``) listens on
127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ray

from edge_opt.config.sections import ExecutorSpec
from edge_opt.errors import ExecutorError
from edge_opt.orchestrate.executors.base import NodeInfo, TaskFailure

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT_S = 5.0
_NODE_ID = re.compile(r"[Nn]ode (?:ID|id)[:=]?\s*([0-9a-f]{16,})")


def _check_reachable(address: str) -> None:
    """A HOST:PORT that nothing answers on fails in seconds, not after Ray's long retries."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExecutorError(
            f"executor.address: {address!r} is not HOST:PORT (e.g. 192.168.1.10:6379), "
            "`auto` or `local`"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S) as conn:
            speaks = _speaks_grpc(conn)
    except OSError as exc:
        raise ExecutorError(
            f"executor.address: nothing answers at {address} ({exc.strerror or exc}); start "
            "the head with `ray start --head --port=PORT` there, or use `address: local`"
        ) from None
    if not speaks:  # ray.init would wait on it for minutes, deaf to SIGTERM
        raise ExecutorError(
            f"executor.address: {address} answers but is not a Ray head (its GCS port speaks "
            f"gRPC; this one did not answer an HTTP/2 greeting within {CONNECT_TIMEOUT_S:g} s); "
            "give the port `ray start --head` printed (default 6379)"
        )


# An HTTP/2 client greeting: the connection preface, then an empty SETTINGS frame.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _speaks_grpc(conn: socket.socket) -> bool:
    """Whether the peer answers an HTTP/2 greeting with a SETTINGS frame (what a gRPC server,
    Ray's GCS, does first), within ``CONNECT_TIMEOUT_S``; a silent or other server does not."""
    conn.settimeout(CONNECT_TIMEOUT_S)
    try:
        conn.sendall(_H2_PREFACE)
        header = b""
        while len(header) < 9:  # a frame header: length (3), type (1), flags (1), stream (4)
            chunk = conn.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
    except OSError:  # a timeout included
        return False
    return header[3] == 4


def _connect(spec: ExecutorSpec) -> None:
    if ray.is_initialized():
        return
    if spec.address not in ("auto", "local"):
        _check_reachable(spec.address)
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    # ray.init installs its own SIGTERM handler (exit 15): keep ours (SIGTERM = Ctrl-C, a
    # clean stop with the resume command).
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if spec.address == "local":
            ray.init(
                address="local",
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                _node_ip_address=LOOPBACK,
                **quiet,
            )
        else:
            ray.init(address=spec.address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutorError(
            f"executor.address: cannot connect to Ray at {spec.address!r}: {first}. Start a "
            "cluster with `ray start --head` (docs/devices.md: Distributed runs), give its "
            "HOST:PORT, or use `address: local` for an embedded Ray on this machine"
        ) from None
    finally:
        if sigterm is not None:
            with contextlib.suppress(ValueError):  # not the main thread: nothing to restore
                signal.signal(signal.SIGTERM, sigterm)


def _node_of(exc: BaseException) -> str:
    match = _NODE_ID.search(str(exc))
    return match.group(1)[:12] if match else "unknown"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


class RayExecutor:
    kind = "ray"
    distributed = True

    def __init__(self, spec: ExecutorSpec) -> None:
        self.spec = spec
        _connect(spec)
        self.node_id = ray.get_runtime_context().get_node_id()  # this driver's node
        total = ray.cluster_resources()
        largest = max(
            (n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0
        )
        if spec.cpus_per_task > largest:
            self.close()
            raise ExecutorError(
                f"executor.cpus_per_task: {spec.cpus_per_task} but the largest node of the "
                f"cluster has {largest:g} CPU(s): no prepare task could ever start; use at "
                f"most {max(int(largest), 1)}"
            )
        log.info(
            "ray: %d node(s), %g CPUs; prepare tasks take %d CPU(s) each",
            len([n for n in ray.nodes() if n.get("Alive")]),
            total.get("CPU", 0.0),
            spec.cpus_per_task,
        )

    def _collect(self, refs: list[Any], resource: str | None = None) -> Iterator[tuple[int, Any]]:
        """Results as tasks finish. With ``resource``, tasks still waiting once no live node
        has carried it for ``device_wait_s`` fail at once (Ray would wait for it forever)."""
        index = {ref: i for i, ref in enumerate(refs)}
        pending = list(refs)
        gone_since: float | None = None
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            if not done:
                if resource is None or _has_node(resource):
                    gone_since = None
                    continue
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since < self.spec.device_wait_s:
                    continue
                for ref in pending:
                    ray.cancel(ref, force=True)
                    yield (
                        index[ref],
                        TaskFailure(
                            "gone",
                            f"no live node carries {resource!r} any more (waited "
                            f"{self.spec.device_wait_s:g} s for it to come back)",
                        ),
                    )
                return
            ref = done[0]
            try:
                yield index[ref], ray.get(ref)
            except ray.exceptions.RayError as exc:
                failure = TaskFailure(_node_of(exc), _reason(exc))
                log.warning("%s", failure.describe())
                yield index[ref], failure

    def prepare(
        self, fn: Callable[..., Any], shared: Any, payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        task = ray.remote(num_cpus=self.spec.cpus_per_task, max_retries=self.spec.max_retries)(
            _pinned
        )
        shared_ref = ray.put(shared)
        refs = [
            task.remote(fn, shared_ref, payload, self.spec.cpus_per_task) for payload in payloads
        ]
        yield from self._collect(refs)

    def measure(
        self, resource: str, fn: Callable[..., Any], payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        task = ray.remote(num_cpus=0, resources={resource: 1}, max_retries=self.spec.max_retries)(
            fn
        )
        yield from self._collect([task.remote(payload) for payload in payloads], resource)

    def device_node(self, resource: str) -> NodeInfo | None:
        """Wait (at most ``device_wait_s``) for a live node carrying ``resource``; describe it
        as the node itself reports (a tiny task run there)."""
        deadline = time.monotonic() + self.spec.device_wait_s
        while True:
            if _has_node(resource):
                break
            if time.monotonic() >= deadline:
                return None
            time.sleep(1.0)
        probe = ray.remote(num_cpus=0, resources={resource: 1}, max_retries=0)(_describe)
        return NodeInfo.from_dict(ray.get(probe.remote(), timeout=max(30.0, 0.0)))

    def close(self) -> None:
        # A cluster we joined stays up for its other users; an embedded one goes with us.
        if self.spec.address == "local" and ray.is_initialized():
            ray.shutdown()


def _has_node(resource: str) -> bool:
    return any(n.get("Alive") and n["Resources"].get(resource) for n in ray.nodes())


def _pinned(fn: Callable[..., Any], shared: Any, payload: Any, threads: int) -> Any:
    """Run a prepare task with torch pinned to the CPUs Ray gave it (tasks don't fight), and
    glibc's allocator set as in the driver (without it, training mmaps and unmaps every large
    activation: 1.25-1.45x slower, measured)."""
    import torch

    from edge_opt.measure.process import stabilize_allocator

    stabilize_allocator()
    torch.set_num_threads(threads)
    return fn(shared, payload)


def _describe() -> dict[str, Any]:
    from edge_opt.orchestrate.executors.base import this_node

    return this_node(ray.get_runtime_context().get_node_id()).to_dict()
