"""The run's log file: every record and library warning of a run, kept off the progress display.

A run writes ``run.log``: edge-opt's own records, every library's log records (torchao's
"Failed to load" of optional kernels, ONNX Runtime's quantization "pre-processing" hint) and
Python warnings (as records of ``py.warnings``: torch.ao's deprecation, inductor's
``UserWarning``). ``log_to_file`` does that with logging handlers alone, which is all a library
may do.

Some output never passes through Python: the PyTorch profiler's kineto library prints
``USDT: ... profiler_start`` lines with C++ straight to file descriptor 2, and child processes
(the peak-RSS probes) inherit it. Only the process owner may move fd 2: ``stderr_to_file``
(used by the ``edge-opt`` command) points it at the log for the length of a run and hands back
a stream on the real terminal for what a person must see.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

__all__ = ["LOG_FORMAT", "RUN_LOG", "log_to_file", "stderr_to_file"]

RUN_LOG = "run.log"
LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to_file(path: str | Path, header: str = "") -> Iterator[Path]:
    """Append every log record and Python warning to ``path`` while the block runs.

    Records reach the file at the level their logger lets through (``edge-opt`` sets its own
    loggers to INFO); Python warnings are routed to logging (``py.warnings``) meanwhile. An
    exception that ends the block is written to the file with its traceback (only there), then
    re-raised.

    Args:
        path: the log file; created, or appended to (a resumed run continues its log).
        header: a first line for this block (e.g. the command and the start time).

    Yields:
        ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(target, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    # torch's loggers keep their own stderr handler and do not propagate to the root; under
    # ``stderr_to_file`` that handler writes into the same file.
    root = logging.getLogger()
    shown = warnings.showwarning
    root.addHandler(handler)
    # Not logging.captureWarnings: it does nothing when it was turned on before, even if
    # something replaced ``warnings.showwarning`` since; this hook is ours for the block.
    warnings.showwarning = _warning_to_log
    try:
        if header:
            handler.handle(_record(logging.INFO, header))
        yield target
    except BaseException as exc:
        # Only into the file: the console gets one line from the command, not a traceback.
        handler.handle(_record(logging.ERROR, f"run stopped: {type(exc).__name__}: {exc}", exc))
        raise
    finally:
        warnings.showwarning = shown
        root.removeHandler(handler)
        handler.close()


def _warning_to_log(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """A Python warning as a record of ``py.warnings`` (what ``logging.captureWarnings`` does)."""
    text = warnings.formatwarning(message, category, filename, lineno, line)
    logging.getLogger("py.warnings").warning("%s", text.rstrip())


def _record(level: int, message: str, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("edge_opt.run", level, __file__, 0, message, None, exc_info)


@contextlib.contextmanager
def stderr_to_file(path: str | Path) -> Iterator[TextIO]:
    """Point file descriptor 2 at ``path`` (appending) while the block runs.

    Everything written to fd 2 goes to the file: C/C++ libraries, child processes, and Python
    streams bound to fd 2 (``sys.stderr``, torch's own log handler). Restored on every exit.

    Yields:
        A line-buffered text stream on the original stderr (the terminal, or the pipe), for
        the progress display and the messages a person must see.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    terminal = os.fdopen(os.dup(saved), "w", encoding=encoding, errors="replace", buffering=1)
    try:
        os.dup2(target, 2)
        yield terminal
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(target)
        with contextlib.suppress(OSError):
            terminal.close()
