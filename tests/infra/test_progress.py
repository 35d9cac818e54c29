"""Progress display: log lines throttled by time, never a carriage return; bars on a terminal."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from edge_opt.infra.progress import (
    LogProgress,
    NullProgress,
    Progress,
    RichProgress,
    format_seconds,
    heartbeat_line,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Lines:
    """The progress logger's messages so far (a live view of caplog)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def get(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if r.name == "edge_opt.infra.progress"]


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Lines:
    caplog.set_level(logging.INFO, logger="edge_opt.infra.progress")
    return Lines(caplog)


def test_log_progress_prints_at_most_one_line_per_interval(lines: Lines) -> None:
    clock = FakeClock()
    progress = LogProgress(interval_s=10.0, clock=clock)
    progress.start("timing latency", 20, "rounds")
    for _ in range(6):  # one round every 3 s: lines at 12 s and 24 s only
        clock.now += 3.0
        progress.advance(1)
    assert lines.get() == [
        "timing latency: 4/20 rounds, 12 s elapsed, about 48 s left",
    ]
    for _ in range(4):
        clock.now += 3.0
        progress.advance(1)
    progress.finish()
    assert lines.get()[1] == "timing latency: 8/20 rounds, 24 s elapsed, about 36 s left"
    assert len(lines.get()) == 2
    assert not any("\r" in line for line in lines.get())


def test_log_progress_interval_zero_is_one_line_per_step_with_detail(lines: Lines) -> None:
    clock = FakeClock()
    progress = LogProgress(interval_s=0.0, clock=clock)
    progress.start("preparing", 3, "candidates")
    for cid in ("p00-fp32-eager", "p00-int8-eager", "p50-fp32-eager"):
        clock.now += 2.0
        progress.advance(1, cid)
    progress.finish()
    progress.advance(1)  # after finish: no task, nothing printed
    assert lines.get() == [
        "preparing: 1/3 candidates (p00-fp32-eager), 2 s elapsed, about 4 s left",
        "preparing: 2/3 candidates (p00-int8-eager), 4 s elapsed, about 2 s left",
        "preparing: 3/3 candidates (p50-fp32-eager), 6 s elapsed",
    ]


def test_heartbeat_without_total_has_no_eta() -> None:
    assert heartbeat_line("training", 7, None, "batches", 3.2) == (
        "training: 7 batches, 3 s elapsed"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (59.4, "59 s"), (125, "2 min 05 s"), (3780, "1 h 03 min"), (-1, "?")],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def test_every_implementation_satisfies_the_protocol() -> None:
    console = Console(file=io.StringIO())
    for progress in (NullProgress(), LogProgress(), RichProgress(console)):
        assert isinstance(progress, Progress)


def test_rich_progress_draws_a_bar_with_eta_and_removes_it_when_finished() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    progress = RichProgress(console)
    progress.start("timing latency", 4, "rounds")
    progress.advance(2, "p00-fp32-eager")
    progress._bars.refresh()
    assert "timing latency" in buffer.getvalue()
    assert "2/4" in buffer.getvalue()
    assert "ETA" in buffer.getvalue()
    progress.finish()
    assert progress._bars.tasks == []
    assert not progress._bars.live.is_started
