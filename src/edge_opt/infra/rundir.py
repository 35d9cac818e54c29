"""The run directory: checked before anything runs, locked, built aside, published when complete.

Layout of an output directory ``OUT``::

    OUT/run_status.json        running | interrupted | failed | publishing | complete (+ pid, stage)
    OUT/<report files>         the last *complete* run, published in one step at its end
    OUT/.edge-opt/lock         exclusive lock (flock) held by the running process; holds its pid
    OUT/.edge-opt/staging/     the run being built (reports are written here first)
    OUT/.edge-opt/cache/       content-keyed results of finished work (what --resume reuses)
    OUT/.edge-opt/tmp/         scratch space, emptied on every open and every exit
    OUT/.edge-opt/run.log      the run's live log (copied into the run as run.log when complete)
    OUT/.edge-opt/published.json   every file the last publish put in OUT (nothing else is ours)

Rules (each one is a test): a path of ``''``/``.`` (the current directory), a file, or a
directory under ``/proc``, ``/sys`` or ``/dev`` is refused; a non-empty directory that is not
an edge-opt run is refused; a finished run is replaced only with ``overwrite`` (and stays intact
until the new run completes); an interrupted run is continued only with ``resume``; a second
process gets a one-line refusal naming the holder's pid; a file edge-opt did not write is never
deleted. ``run_status.json`` is rewritten atomically at every stage change."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_opt.infra.artifacts import atomic_write_json
from edge_opt.infra.publish import apply_journal, finish_interrupted_publish
from edge_opt.infra.runstatus import (
    JOURNAL,
    PUBLISHED,
    STATE_DIR,
    STATUS_FILE,
    RunDirError,
    check_output_path,
    is_run_dir,
    now_iso,
    published_files,
    read_status,
)
from edge_opt.infra.stop import check_stop


@dataclass
class RunDir:
    """A locked output directory for one run. Use ``open_run_dir``; not thread-safe."""

    out: Path
    mode: str  # "new", "resume" or "overwrite"
    command: list[str]
    status: dict[str, Any] = field(default_factory=dict)
    _lock_fd: int | None = None

    @property
    def state(self) -> Path:
        return self.out / STATE_DIR

    @property
    def staging(self) -> Path:
        return self.state / "staging"

    @property
    def cache_root(self) -> Path:
        return self.state / "cache"

    @property
    def tmp(self) -> Path:
        return self.state / "tmp"

    @property
    def log(self) -> Path:
        """The live log of the run (``edge_opt.infra.runlog``); published as ``run.log``."""
        return self.state / "run.log"

    def resume_command(self) -> str:
        args = list(self.command)
        for flag in ("--overwrite", "--resume"):
            while flag in args:
                args.remove(flag)
        if "-o" not in args and "--output-dir" not in args:
            args += ["-o", str(self.out)]
        return shlex.join([*args, "--resume"])

    def set_status(self, state: str, **extra: Any) -> None:
        """Rewrite ``run_status.json`` atomically (``stage``, ``error`` ... go in ``extra``)."""
        self.status = {
            **self.status,
            "status": state,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "output_dir": str(self.out),
            "updated_at": now_iso(),
            **extra,
        }
        self.status.setdefault("started_at", self.status["updated_at"])
        if state != "complete":
            self.status["resume_command"] = self.resume_command()
        else:
            self.status.pop("resume_command", None)
            self.status.pop("error", None)
        atomic_write_json(self.out / STATUS_FILE, self.status)

    def stage(self, name: str) -> None:
        check_stop()  # a stop request swallowed by a finalizer ends the run here
        self.set_status("running", stage=name)

    def publish(self) -> list[str]:
        """Move the staged run into ``out``: the previous run's files go, foreign files stay.

        Idempotent: a publish cut short (crash, kill) is finished by the next ``open`` from its
        journal. Returns the published relative paths.
        """
        new = sorted(
            str(p.relative_to(self.staging)) for p in self.staging.rglob("*") if p.is_file()
        )
        journal = {"new": new, "old": published_files(self.out)}
        atomic_write_json(self.state / JOURNAL, journal)
        self.set_status("publishing", stage="publishing")
        apply_journal(self.out, self.staging, journal)
        return new

    def remember_config(self, config: dict[str, Any]) -> list[str]:
        """Keep the run's resolved config; on a resume, return the keys that changed since
        the interrupted run (its cached work for those is not reused: the cache keys differ)."""
        path = self.state / "run_config.json"
        changed: list[str] = []
        if self.mode == "resume" and path.is_file():
            try:
                before = json.loads(path.read_text(encoding="utf-8"))
                keys = sorted(set(before) | set(config))
                changed = [k for k in keys if before.get(k) != config.get(k)]
            except (OSError, ValueError, AttributeError):
                changed = []
        atomic_write_json(path, config)
        return changed

    def record_published(self, relative: Path) -> None:
        """Count a file written into the run after its publish (``export``) as edge-opt's own,
        so the next ``--overwrite`` replaces it with the rest of the run."""
        files = published_files(self.out)
        if str(relative) not in files:
            record = {"files": sorted([*files, str(relative)]), "published_at": now_iso()}
            atomic_write_json(self.state / PUBLISHED, record)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        if not (self.state / JOURNAL).is_file():  # else a publish to finish still needs it
            shutil.rmtree(self.staging, ignore_errors=True)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)
            self._lock_fd = None


def _acquire_lock(state: Path, out: Path) -> int:
    state.mkdir(parents=True, exist_ok=True)
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "unknown"
        os.close(fd)
        raise RunDirError(
            f"{out} is in use by another edge-opt process (pid {holder}); wait for it to "
            "finish or choose another output_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _check_mode(out: Path, status: dict[str, Any] | None, overwrite: bool, resume: bool) -> str:
    state = (status or {}).get("status")
    if state is None and (
        (out / STATE_DIR / PUBLISHED).is_file() or (out / "run_result.json").is_file()
    ):
        state, status = "complete", {}  # its status file was deleted: still a finished run
    journal = out / STATE_DIR / JOURNAL
    if resume:
        if state in ("interrupted", "failed", "running") or journal.is_file():
            return "resume"
        if state == "complete":
            raise RunDirError(
                f"{out} holds a finished run: nothing to resume; pass --overwrite to run it again"
            )
        raise RunDirError(f"{out} holds no interrupted run to resume; run without --resume")
    if state == "complete" and not overwrite:
        when = status.get("finished_at") or status.get("updated_at")
        raise RunDirError(
            f"{out} holds a finished run{f' (finished {when})' if when else ''}; pass "
            "--overwrite to replace it (it is kept until the new run completes) or choose "
            "another output_dir"
        )
    if state in ("interrupted", "failed") and not overwrite and not _holds_work(out):
        return "new"  # it stopped before anything was made: nothing to protect or resume
    if state in ("interrupted", "failed", "unreadable") and not overwrite:
        return_hint = status.get("resume_command") or "edge-opt run CONFIG -o OUT --resume"
        raise RunDirError(
            f"{out} holds a run that did not finish ({state}); continue it with: {return_hint} "
            "(or pass --overwrite to start over)"
        )
    return "overwrite" if overwrite and state else "new"


def _holds_work(out: Path) -> bool:
    """Whether a stopped run left anything worth keeping: cached work or published files."""
    cache = out / STATE_DIR / "cache"
    made = cache.is_dir() and any(p.is_file() for p in cache.rglob("*"))
    return made or (out / STATE_DIR / PUBLISHED).is_file() or (out / "run_result.json").exists()


def open_run_dir(
    path: str | Path,
    *,
    overwrite: bool = False,
    resume: bool = False,
    command: Sequence[str] = ("edge-opt", "run"),
) -> RunDir:
    """Check, create and lock ``path`` for a run; the caller must ``close()`` it.

    Raises:
        RunDirError: the path is refused (the message says why and what to pass instead).
    """
    if overwrite and resume:
        raise RunDirError("--overwrite and --resume contradict each other; pass one")
    out = check_output_path(path)
    if out.is_dir() and any(out.iterdir()) and not is_run_dir(out):
        raise RunDirError(
            f"output_dir: {out} is not empty and is not an edge-opt run; choose a new or "
            "empty directory (edge-opt never writes among files it did not create)"
        )
    # What this call creates, it removes again if it then refuses the directory.
    created = out if not out.exists() else (out / STATE_DIR if not is_run_dir(out) else None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = _acquire_lock(out / STATE_DIR, out)
    except OSError as exc:
        raise RunDirError(
            f"output_dir: cannot write to {out} ({exc.strerror or exc}); choose a writable "
            "directory"
        ) from None
    run_dir = RunDir(out, "new", list(command), _lock_fd=fd)
    try:
        finishing = (run_dir.state / JOURNAL).is_file()
        finish_interrupted_publish(
            run_dir.out, run_dir.state, run_dir.staging
        )  # a publish cut short is finished first
        status = read_status(out, lock_held=True)
        if finishing and resume:  # that publish *was* what was left to do: resume is fine
            status = {**(status or {}), "status": "interrupted"}
        run_dir.mode = _check_mode(out, status, overwrite, resume)
        if run_dir.mode == "overwrite":
            shutil.rmtree(run_dir.cache_root, ignore_errors=True)
        if run_dir.mode != "resume":  # a resumed run continues its log; a new one starts one
            run_dir.log.unlink(missing_ok=True)
        for scratch in (run_dir.tmp, run_dir.staging):
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir(parents=True)
        previous = (status or {}).get("started_at") if run_dir.mode == "resume" else None
        run_dir.status = {"started_at": previous} if previous else {}
        run_dir.set_status("running", stage="starting", mode=run_dir.mode, command=list(command))
    except BaseException:
        run_dir.close()
        if created is not None and not (out / STATUS_FILE).is_file():
            shutil.rmtree(created, ignore_errors=True)
        raise
    return run_dir


@contextlib.contextmanager
def locked_run_dir(path: str | Path) -> Iterator[RunDir]:
    """Lock an existing run directory for a short job (``report``) without changing its status.

    Raises:
        RunDirError: no run there, or another process holds it.
    """
    out = check_output_path(path)
    if not out.is_dir():
        raise RunDirError(f"{out}: no such directory; pass the output directory of a run")
    created = not (out / STATE_DIR).exists()  # removed again if the job fails
    try:
        fd = _acquire_lock(out / STATE_DIR, out)
    except OSError as exc:
        raise RunDirError(f"{out}: cannot lock ({exc.strerror or exc})") from None
    run_dir = RunDir(out, "report", [], _lock_fd=fd)
    try:
        finish_interrupted_publish(run_dir.out, run_dir.state, run_dir.staging)
        run_dir.status = read_status(out, lock_held=True) or {}
        shutil.rmtree(run_dir.staging, ignore_errors=True)
        run_dir.staging.mkdir(parents=True)
        yield run_dir
    except BaseException:
        run_dir.close()
        if created:
            shutil.rmtree(out / STATE_DIR, ignore_errors=True)
        raise
    run_dir.close()
