"""Stop requests (Ctrl-C, SIGTERM) that are never swallowed, and calls into user code that
cannot end edge-opt behind its back.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; when that is a
finalizer or a weakref callback (torch has many), the interpreter prints "Exception ignored
in ..." and carries on. So the handler also records the request, and ``check_stop`` (called
between stages and before a run is published) raises it again: a stopped run never completes
as if nothing happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from edge_opt.errors import EdgeOptError

_requested: list[int] = []  # the signals received since stop_on_signals began


def _request(signum: int, _frame: object) -> NoReturn:
    _requested.append(signum)
    raise KeyboardInterrupt


def stop_requested() -> bool:
    return bool(_requested)


def check_stop() -> None:
    """Raise ``KeyboardInterrupt`` again if a stop was requested (it may have been swallowed).

    Raises:
        KeyboardInterrupt: a Ctrl-C or SIGTERM arrived since ``stop_on_signals`` began.
    """
    if _requested:
        raise KeyboardInterrupt


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM both mean "stop": recorded, then ``KeyboardInterrupt`` (status,
    cleanup and message follow as for Ctrl-C). Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()
    previous = {s: signal.signal(s, _request) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class UserExit(SystemExit):
    """User code called ``os._exit``: turned into an exception while edge-opt calls it."""


def _refuse_exit(code: int) -> NoReturn:
    raise UserExit(code)


@contextlib.contextmanager
def user_code(what: str, error: type[EdgeOptError]) -> Iterator[None]:
    """While user code (a factory, its dataset's items) runs: ``os._exit`` inside it raises
    instead of ending the process, and a ``KeyboardInterrupt`` it raises itself (no signal
    arrived) is its error, not a stop request.

    Raises:
        error: the code raised ``KeyboardInterrupt`` with no stop requested.
        UserExit: it called ``os._exit`` (a ``SystemExit``: callers report it as user code's).
        KeyboardInterrupt: a real stop request arrived meanwhile.
    """
    original = os._exit
    os._exit = _refuse_exit  # type: ignore[assignment]
    try:
        yield
    except KeyboardInterrupt:
        if stop_requested():
            raise
        raise error(
            f"{what}: it raised KeyboardInterrupt itself (no Ctrl-C or SIGTERM was sent); "
            "user code must return or raise an error"
        ) from None
    finally:
        os._exit = original  # type: ignore[assignment]


def call_user_code(
    what: str, error: type[EdgeOptError], function: Callable[..., Any], **kwargs: Any
) -> Any:
    """``function(**kwargs)`` under ``user_code(what, error)``."""
    with user_code(what, error):
        return function(**kwargs)
