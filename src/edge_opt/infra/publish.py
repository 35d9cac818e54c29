"""Publishing a finished run into its directory in one journaled step: a publish cut short by a
crash is finished on the next open, and a file edge-opt did not write is never deleted."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

from edge_opt.infra.artifacts import atomic_write_json
from edge_opt.infra.runstatus import (
    JOURNAL,
    PUBLISHED,
    STATE_DIR,
    STATUS_FILE,
    now_iso,
    read_status,
)
from edge_opt.infra.verified import is_contained


def make_way(out: Path, rel: str, old: set[str], displaced: Path) -> None:
    """Move aside anything edge-opt did not write that stands where ``rel`` goes: a file, a
    directory, or a file where one of its parent folders must be. It is kept, never deleted."""
    parts = Path(rel).parts
    for depth in range(1, len(parts) + 1):
        path = out.joinpath(*parts[:depth])
        last = depth == len(parts)
        foreign = (path.is_dir() if last else path.exists() and not path.is_dir()) or (
            last and path.exists() and rel not in old and rel != STATUS_FILE
        )
        if foreign:
            keep = displaced.joinpath(*parts[:depth])
            keep.parent.mkdir(parents=True, exist_ok=True)
            if keep.exists():
                shutil.rmtree(keep) if keep.is_dir() else keep.unlink()  # an older copy of ours
            os.replace(path, keep)
            return


def apply_journal(out: Path, staging: Path, journal: dict[str, list[str]]) -> None:
    """Move every new file in and remove the old run's others; safe to repeat after a crash.

    SIGINT and SIGTERM are held back meanwhile (the renames take milliseconds), so that a
    stop request lands before or after the publish, never in the middle of it.
    """
    state = out / STATE_DIR
    # The journal is read back from disk: only names that stay inside ``out`` are acted on.
    old = {rel for rel in journal["old"] if is_contained(out, rel)}
    new = [rel for rel in journal["new"] if is_contained(out, rel)]
    with signals_held():
        for rel in new:
            source, target = staging / rel, out / rel
            if not source.is_file():  # already moved by an earlier, interrupted publish
                continue
            make_way(out, rel, old, state / "displaced")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        for rel in sorted(old - set(new) - {STATUS_FILE}):
            path = out / rel
            if path.is_file() or path.is_symlink():
                path.unlink()
            parent = path.parent
            while parent != out and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        atomic_write_json(state / PUBLISHED, {"files": new, "published_at": now_iso()})
        (state / JOURNAL).unlink(missing_ok=True)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, ValueError, OSError):  # not the main thread, or no such call
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def finish_interrupted_publish(out: Path, state: Path, staging: Path) -> None:
    """A publish cut short (SIGKILL, a crash) is finished from its journal in ``state``: every
    report file existed before it began, so finishing it completes that run."""
    journal = state / JOURNAL
    if not journal.is_file():
        return
    apply_journal(out, staging, json.loads(journal.read_text(encoding="utf-8")))
    status = read_status(out, lock_held=True) or {}
    status.update(status="complete", stage="done", finished_at=now_iso())
    status.pop("resume_command", None)
    status.pop("error", None)
    status["note"] = "its publish was cut short and was finished by a later command"
    atomic_write_json(out / STATUS_FILE, status)
