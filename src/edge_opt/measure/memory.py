"""Runtime memory: the peak of live activations (a liveness walk) and a measured peak-RSS delta.

``runtime_memory_mb`` = serialized weights + peak live activations at the latency batch.
The liveness walk executes the model node by node (``torch.fx``) and, at every node, adds up the
distinct tensor storages still alive (inputs not yet consumed by their last user, plus the new
output); views share storage and count once, and dtypes are the real ones (int8 activations are
1 byte). Weights and constants (``get_attr``) are excluded: they are in the serialized size.

``measured_peak_rss_mb`` is a measurement beside that model: a fresh child process loads the
candidate, resets its peak-RSS mark (``/proc/self/clear_refs``), runs one inference and reports
VmHWM minus the RSS before the call. It includes allocator and kernel workspace effects.
"""

from __future__ import annotations

import copy
import os
import queue
import select
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import fx, nn

from edge_opt.models.hooks import run_with_leaf_hooks

BYTES_PER_MB = 2**20


@dataclass(frozen=True)
class ActivationPeak:
    peak_bytes: int
    at_node: str
    method: str  # "fx liveness" or "hooks (approximate)"


def _storages(value: Any) -> dict[int, int]:
    """data_ptr -> nbytes of every tensor storage in a (nested) value."""
    found: dict[int, int] = {}
    if isinstance(value, torch.Tensor):
        if value.is_quantized:
            found[value.data_ptr()] = value.numel() * value.element_size()
        else:
            storage = value.untyped_storage()
            found[storage.data_ptr()] = storage.nbytes()
    elif isinstance(value, list | tuple):
        for item in value:
            found.update(_storages(item))
    elif isinstance(value, dict):
        for item in value.values():
            found.update(_storages(item))
    return found


class _LivenessInterpreter(fx.Interpreter):
    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module, garbage_collect_values=True)
        self.peak, self.at = 0, ""

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if n.op in ("call_module", "call_function", "call_method", "placeholder"):
            live: dict[int, int] = {}
            for node, value in self.env.items():
                if node.op != "get_attr":
                    live.update(_storages(value))
            live.update(_storages(result))
            total = sum(live.values())
            if total > self.peak:
                self.peak, self.at = total, n.name
        return result


def peak_activation_bytes(model: nn.Module, example: torch.Tensor) -> ActivationPeak:
    """Peak bytes of live activations during one forward pass of ``model(example)``."""
    module = model if isinstance(model, fx.GraphModule) else None
    if module is None:
        try:
            module = fx.symbolic_trace(copy.deepcopy(model))
        except Exception:  # untraceable (data-dependent control flow): approximate with hooks
            return _hook_peak(model, example)
    interpreter = _LivenessInterpreter(module)
    with torch.inference_mode():
        interpreter.run(example)
    return ActivationPeak(interpreter.peak, interpreter.at, "fx liveness")


def _hook_peak(model: nn.Module, example: torch.Tensor) -> ActivationPeak:
    peak, at = [example.numel() * example.element_size()], [""]

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        total = sum(_storages(inputs).values()) + sum(_storages(output).values())
        if total > peak[0]:
            peak[0], at[0] = total, type(module).__name__

    run_with_leaf_hooks(model, example, hook)
    return ActivationPeak(peak[0], at[0], "hooks (approximate)")


# A probe server: imports torch and ONNX Runtime once, then forks one child per request, so
# that every probe runs in a fresh process (nothing run before it) without paying for a new
# interpreter and a torch import each time. Nothing runs in the server before it forks. It
# forks a child as each request arrives, several running at once (one per lane), and answers
# "<result file>\t<wait status>" as each ends: the lanes' children share the one server's
# pages (a server per lane cost 100-180 MiB more PSS at the run's peak, measured).
_PROBE_SERVER = r"""
import gc, os, select, signal, sys
import torch
try:
    import onnxruntime as ort
except ImportError:
    ort = None

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

def probe(path, input_path, threads, fmt):
    torch.set_num_threads(threads)
    x = torch.load(input_path, weights_only=True)
    if fmt == "onnx":
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.float().numpy()}
        model = lambda _x: session.run(None, feed)
    elif fmt == "pte":  # ExecuTorch (imported by the server): thread pool sized as in the sweep
        from executorch.runtime import Runtime
        et_lib()._unsafe_reset_threadpool(threads)
        method = Runtime.get().load_program(path).load_method("forward")
        model = lambda _x: method.execute([_x.float().contiguous()])
    else:
        model = torch.jit.load(path)
    def one_call():
        rss = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        with torch.inference_mode():
            model(x)
        return status("VmHWM") - rss
    return one_call(), one_call()

_et = []

def et_lib():
    # ExecuTorch's runtime is imported once, by the server, on the first .pte request, before it
    # forks: a child that imported it itself spent ~2 s and copied its pages (measured: 227 MiB
    # PSS per child, 16.5 s for the default run's probes). Nothing is loaded or run by the import.
    if not _et:
        import executorch.extension.pybindings.portable_lib as lib
        from executorch.runtime import Runtime
        Runtime.get()  # its one-time set-up too (no thread starts before a program runs)
        _et.append(lib)
    return _et[0]

def child(line, wake):
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in wake:
        os.close(fd)
    path, input_path, threads, result, fmt = line.split("\t")
    try:
        cold, warm = probe(path, input_path, int(threads), fmt)
        text = f"ok {cold} {warm}"
    except BaseException as exc:
        text = "error " + " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
    with open(result, "w") as fh:
        fh.write(text)
    os._exit(0)

wake = os.pipe()  # a child's end wakes the select below (SIGCHLD through the wakeup fd)
os.set_blocking(wake[1], False)
signal.set_wakeup_fd(wake[1])
signal.signal(signal.SIGCHLD, lambda *_: None)
running, pending, reading = {}, b"", True
while reading or running:
    ready, _, _ = select.select([wake[0]] + ([0] if reading else []), [], [])
    if wake[0] in ready:
        os.read(wake[0], 4096)
    if 0 in ready:
        chunk = os.read(0, 65536)
        reading = bool(chunk)
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.decode().rsplit("\t", 1)[-1] == "pte":
                try:
                    et_lib()
                except ImportError:
                    pass  # the child says so in its result
            # Objects the server holds are left out of the collector's scans, so a child's
            # collections do not write to (and copy) every page of them: a child's own memory
            # is what it loads and runs, not a copy of the server's heap.
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                child(line.decode(), wake)
            running[pid] = line.decode().split("\t")[3]
    while running:
        pid, code = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            break
        print(running.pop(pid), code, sep="\t", flush=True)
"""


@dataclass(frozen=True)
class RssProbe:
    """Peak-RSS growth (MiB) of the first (cold) and second (warm) inference in a fresh process."""

    cold_mb: float | None
    warm_mb: float | None
    note: str


def _save_for_probe(model: nn.Module, example: torch.Tensor, folder: Path) -> Path:
    # TorchScript: what a deployment would load, and it reloads without unpickling code.
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in 2.13 and says so
        traced = torch.jit.trace(model, example, check_trace=False)
        path = folder / "model.ts"
        torch.jit.save(traced, str(path))
    return path


class _Server:
    """One probe server process and the answers read from it (result file -> wait status)."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PROBE_SERVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
        )
        self.answers: set[str] = set()
        self.ended = False
        self._unread = b""

    def send(self, line: str) -> None:
        if self.process.stdin is None:
            raise RuntimeError("the probe server has no pipes")
        self.process.stdin.write(line.encode())

    def read_answer(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the next answer; False when none came in time. Raw
        reads (no buffered lines select cannot see): two answers may arrive at once."""
        stdout = self.process.stdout
        if stdout is None:
            raise RuntimeError("the probe server has no pipes")
        while b"\n" not in self._unread:
            ready, _, _ = select.select([stdout], [], [], timeout_s)
            if not ready:
                return False
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:
                self.ended = True
                return True
            self._unread += chunk
        line, self._unread = self._unread.split(b"\n", 1)
        self.answers.add(line.decode().split("\t")[0])
        return True

    def stop(self, wait_s: float) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class RssProber:
    """Measures peak-RSS growth of one inference, each in a fresh (forked) child process.

    One server process imports torch once; every ``probe`` forks a child of it that loads the
    candidate and runs it. ``probe`` may be called from several threads at once: their
    children run side by side, forked from the same server. Use as a context manager (the
    server ends on exit).
    """

    def __init__(self, timeout_s: float = 120.0) -> None:
        self.timeout_s = timeout_s
        self._server: _Server | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="edge-opt-rss-")
        self._lock = threading.Condition()
        self._reading = False  # one thread reads the server's answers, the others wait

    def __enter__(self) -> RssProber:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop(wait_s=10)
        self._tmp.cleanup()

    def _ask(self, model_path: Path, input_path: Path, threads: int, fmt: str) -> str:
        result = Path(tempfile.mkdtemp(dir=self._tmp.name)) / "result.txt"
        with self._lock:
            if self._server is None or self._server.process.poll() is not None:
                self._server = _Server()
            server = self._server
            server.send(f"{model_path}\t{input_path}\t{threads}\t{result}\t{fmt}\n")
        self._await(server, str(result))
        return result.read_text() if result.is_file() else "error the probe child died"

    def _await(self, server: _Server, key: str) -> None:
        """Until the server answers ``key``: one waiting thread reads, the others wait."""
        deadline = time.monotonic() + self.timeout_s
        with self._lock:
            while key not in server.answers:
                if server.ended:
                    raise RuntimeError("the probe server ended")
                left = deadline - time.monotonic()
                if left <= 0:
                    server.process.kill()
                    server.ended = True
                    self._lock.notify_all()
                    raise RuntimeError(f"no answer within {self.timeout_s:g} s")
                if self._reading:
                    self._lock.wait(left)
                    continue
                self._reading = True
                self._lock.release()
                try:
                    server.read_answer(left)
                finally:
                    self._lock.acquire()
                    self._reading = False
                    self._lock.notify_all()
            server.answers.discard(key)

    def probe(
        self,
        model: nn.Module,
        example: torch.Tensor,
        threads: int = 1,
        artifact: Path | None = None,
        fmt: str | None = None,
    ) -> RssProbe:
        """Cold and warm peak-RSS growth (MiB) of ``model``, or of its exported ``artifact`` run
        as its deployable format ``fmt`` says (``onnx`` in ONNX Runtime, ``pte`` in ExecuTorch;
        by default the file's suffix), on ``example``."""
        if not Path("/proc/self/clear_refs").exists():
            return RssProbe(None, None, "unavailable: /proc/self/clear_refs is missing (not Linux)")
        folder = Path(tempfile.mkdtemp(dir=self._tmp.name))
        try:
            model_path = artifact or _save_for_probe(model, example, folder)
        except Exception as exc:  # not traceable: say so rather than guess
            return RssProbe(None, None, f"unavailable: model cannot be saved for the probe ({exc})")
        input_path = folder / "input.pt"
        torch.save(example, input_path)
        try:
            loader = fmt or (model_path.suffix[1:] if artifact else "torchscript")
            answer = self._ask(model_path, input_path, threads, loader)
        except (OSError, RuntimeError) as exc:
            return RssProbe(None, None, f"probe failed: {exc}")
        if not answer.startswith("ok "):
            return RssProbe(None, None, f"probe failed: {answer.removeprefix('error ')}")
        cold, warm = (max(0, int(v)) / BYTES_PER_MB for v in answer.split()[1:3])
        return RssProbe(cold, warm, f"measured ({model_path.suffix[1:]}, forked child)")


def probe_many(
    jobs: Sequence[tuple[nn.Module, torch.Tensor, Path | None]]
    | Sequence[tuple[nn.Module, torch.Tensor, Path | None, str | None]],
    threads: int = 1,
    lanes: int = 2,
    on_done: Callable[[int], None] | None = None,
) -> list[RssProbe]:
    """``RssProber.probe`` of each (model, example, exported file or None), ``lanes`` at a time:
    one probe server, ``lanes`` children of it at once, so two children run on two cores. Peak
    RSS is per process, so the figures do not depend on the lanes. ``on_done(index)`` is called
    (on the caller's thread) as each probe finishes."""
    if not jobs:
        return []
    lanes = max(1, min(lanes, len(jobs)))
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for index in range(len(jobs)):
        pending.put(index)
    results: list[RssProbe] = [RssProbe(None, None, "not measured")] * len(jobs)
    finished: queue.SimpleQueue[int] = queue.SimpleQueue()
    stop = threading.Event()  # an interrupted caller: the lanes take no further job

    def lane(prober: RssProber) -> None:
        while not stop.is_set():
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            model, example, exported, *fmt = jobs[index]
            try:
                results[index] = prober.probe(
                    model, example, threads, artifact=exported, fmt=fmt[0] if fmt else None
                )
            except Exception as exc:  # e.g. a full disk while saving: a row says so
                results[index] = RssProbe(None, None, f"probe failed: {exc}")
            finally:
                finished.put(index)

    with RssProber() as prober:
        _run_lanes(lambda: lane(prober), lanes, len(jobs), finished, stop, on_done)
    return results


def _run_lanes(
    lane: Callable[[], None],
    lanes: int,
    jobs: int,
    finished: queue.SimpleQueue[int],
    stop: threading.Event,
    on_done: Callable[[int], None] | None,
) -> None:
    """``lanes`` threads each running ``lane``; ``on_done`` on this thread as jobs finish."""
    with ThreadPoolExecutor(lanes, thread_name_prefix="edge-opt-rss") as pool:
        running = [pool.submit(lane) for _ in range(lanes)]
        try:
            done = 0
            while done < jobs:
                try:
                    index = finished.get(timeout=0.5)
                except queue.Empty:
                    if all(f.done() for f in running):  # every lane ended early: say why
                        for f in running:
                            f.result()
                        break
                    continue
                done += 1
                if on_done is not None:
                    on_done(index)
        finally:
            stop.set()


def measure_peak_rss_delta_mb(
    model: nn.Module,
    example: torch.Tensor,
    threads: int = 1,
    timeout_s: float = 120.0,
    artifact: Path | None = None,
) -> RssProbe:
    """Run the model once cold and once warm in a fresh child process; measure peak-RSS growth.

    With ``artifact`` the child runs that exported file instead of ``model`` (``.onnx`` in
    ONNX Runtime, ``.pte`` in ExecuTorch).
    """
    with RssProber(timeout_s) as prober:
        return prober.probe(model, example, threads, artifact)
