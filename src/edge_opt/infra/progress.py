"""Live progress of the long stages: one small interface, three ways to show it.

Stages (training, fine-tuning, preparation, timing, peak-RSS probes) report progress through
a ``Progress``: ``start`` a task with its total, ``advance`` it, ``finish`` it. They never
print. What a person sees is decided once, by the caller of the run:

- ``RichProgress``: bars with ETA on a terminal (``rich.progress``; imported only when used);
- ``LogProgress``: plain log lines for pipes and CI logs, at most one per ``interval_s`` per
  task (no carriage returns);
- ``NullProgress``: nothing (``--quiet``, library use).

One task runs at a time in this pipeline; a task started while another runs replaces it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

__all__ = [
    "LogProgress",
    "NullProgress",
    "Progress",
    "RichProgress",
    "format_seconds",
]


@runtime_checkable
class Progress(Protocol):
    """What a stage calls to say how far it is."""

    def start(self, task: str, total: int | None, unit: str = "") -> None:
        """Begin ``task`` (e.g. ``timing latency``) with ``total`` steps (None: unknown)."""

    def advance(self, steps: int = 1, detail: str = "") -> None:
        """``steps`` more are done; ``detail`` is the current state (``epoch 2/4``)."""

    def finish(self) -> None:
        """The task is over (possibly before its total, e.g. timing that converged)."""


class NullProgress:
    """Shows nothing."""

    def start(self, task: str, total: int | None, unit: str = "") -> None:
        return None

    def advance(self, steps: int = 1, detail: str = "") -> None:
        return None

    def finish(self) -> None:
        return None


def format_seconds(seconds: float) -> str:
    """``7 s``, ``2 min 05 s``, ``1 h 03 min``: a duration for a log line."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@dataclass
class _Task:
    name: str
    total: int | None
    unit: str
    started: float
    done: int = 0
    detail: str = ""
    last_line: float = 0.0


class LogProgress:
    """Progress as log lines: a heartbeat at most every ``interval_s`` per task.

    A line reads ``timing latency: 7/20 rounds, 12 s elapsed, about 22 s left``.
    Nothing is printed at ``start`` or ``finish``: the stage logs what it begins and what it
    found; these lines only say how far it is.

    Args:
        logger: where the lines go (they reach the console and ``run.log`` like any record).
        interval_s: smallest time between two heartbeat lines of one task; 0 = every step.
        clock: seconds, monotonic (injectable for tests).
    """

    def __init__(
        self,
        logger: logging.Logger | None = None,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger or logging.getLogger("edge_opt.infra.progress")
        self.interval_s = interval_s
        self.clock = clock
        self.task: _Task | None = None

    def start(self, task: str, total: int | None, unit: str = "") -> None:
        now = self.clock()
        self.task = _Task(task, total, unit, now, last_line=now)

    def advance(self, steps: int = 1, detail: str = "") -> None:
        task = self.task
        if task is None:
            return
        task.done += steps
        task.detail = detail or task.detail
        now = self.clock()
        if now - task.last_line >= self.interval_s:
            task.last_line = now
            self.logger.info(
                "%s",
                heartbeat_line(
                    task.name, task.done, task.total, task.unit, now - task.started, task.detail
                ),
            )

    def finish(self) -> None:
        self.task = None


def heartbeat_line(
    name: str, done: int, total: int | None, unit: str, elapsed_s: float, detail: str = ""
) -> str:
    """The text of one progress line (pure): count, elapsed, and the time left at this rate."""
    units = f" {unit}" if unit else ""
    count = f"{done}/{total}{units}" if total else f"{done}{units}"
    text = f"{name}: {count}"
    if detail:
        text += f" ({detail})"
    text += f", {format_seconds(elapsed_s)} elapsed"
    if total and 0 < done < total:
        text += f", about {format_seconds(elapsed_s / done * (total - done))} left"
    return text


class RichProgress:
    """Bars with elapsed time and ETA on a terminal (``rich.progress``), one task at a time.

    Log records printed on the same console appear above the bar. The bar never redirects
    ``sys.stdout``/``sys.stderr``: what libraries write there belongs in the run's log.
    """

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _Bars

        self._bars = _Bars(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task: TaskID | None = None

    def start(self, task: str, total: int | None, unit: str = "") -> None:
        if self._task is not None:
            self.finish()
        self._bars.start()
        self._task = self._bars.add_task(task, total=total, unit=unit, detail="")

    def advance(self, steps: int = 1, detail: str = "") -> None:
        if self._task is not None:
            self._bars.update(self._task, advance=steps, detail=detail)

    def finish(self) -> None:
        if self._task is not None:
            self._bars.remove_task(self._task)
            self._task = None
        self._bars.stop()
