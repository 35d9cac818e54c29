"""The run directory: checked before anything runs, locked, built aside, published when complete.

Layout of an output directory ``OUT``::

    OUT/run_status.json        running | interrupted | failed | publishing | complete (+ pid, stage)
    OUT/<report files>         the last *complete* run, published in one step at its end
    OUT/.edge-opt/lock         exclusive lock (flock) held by the running process; holds its pid
    OUT/.edge-opt/staging/     the run being built (reports are written here first)
    OUT/.edge-opt/cache/       content-keyed results of finished work (what --resume reuses)
    OUT/.edge-opt/tmp/         scratch space, emptied on every open and every exit
    OUT/.edge-opt/published.json   every file the last publish put in OUT (nothing else is ours)

Rules (each one is a test): a path of ``''``/``.`` (the current directory), a file, or a
directory under ``/proc``, ``/sys`` or ``/dev`` is refused; a non-empty directory that is not
an edge-opt run is refused; a finished run is replaced only with ``overwrite`` (and stays intact
until the new run completes); an interrupted run is continued only with ``resume``; a second
process gets a one-line refusal naming the holder's pid; a file edge-opt did not write is never
deleted. ``run_status.json`` is rewritten atomically at every stage change.
"""

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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_opt.artifacts import atomic_write_json
from edge_opt.errors import EdgeOptError

STATE_DIR = ".edge-opt"
STATUS_FILE = "run_status.json"
PUBLISHED = "published.json"
JOURNAL = "publish_journal.json"
FORBIDDEN_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
# Names that mark a directory as an edge-opt run written before run directories were locked.
LEGACY_MARKERS = ("run_status.json", "manifest.json")


class RunDirError(EdgeOptError, ValueError):
    """The output directory cannot be used as asked (the message says why and what to do)."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def pid_alive(pid: int | None) -> bool:
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def read_status(out: Path) -> dict[str, Any] | None:
    """The directory's status, with a ``running`` whose process is gone read as interrupted."""
    path = out / STATUS_FILE
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"status": "unreadable", "error": f"{path} is not valid JSON"}
    if not isinstance(status, dict):
        return {"status": "unreadable", "error": f"{path} does not hold a JSON object"}
    if status.get("status") in ("running", "publishing") and not pid_alive(status.get("pid")):
        status = {**status, "status": "interrupted", "was": status.get("status")}
        status.setdefault("error", f"process {status.get('pid')} ended without finishing")
    if status.get("status") == "ok":  # written by edge-opt before status files had states
        status = {**status, "status": "complete"}
    return status


def describe_status(out: Path, status: dict[str, Any]) -> str:
    """One line a person reads: what happened to the run in ``out`` and what to do."""
    state = status.get("status")
    stage = f" during {status['stage']}" if status.get("stage") else ""
    resume = status.get("resume_command") or f"edge-opt run CONFIG -o {out} --resume"
    if state == "running":
        return f"{out}: a run is in progress (pid {status.get('pid')}{stage}); wait for it"
    if state in ("interrupted", "failed"):
        why = f" ({status['error']})" if status.get("error") else ""
        return f"{out}: the last run was {state}{stage}{why}; resume it with: {resume}"
    return f"{out}: status {state!r}"


def require_finished_run(out: Path) -> dict[str, Any]:
    """The status of ``out`` if it holds a complete run's results, for ``report`` and ``export``.

    A run in progress is refused. After an interrupted or failed rerun, the previous complete
    run's files are still whole (a run publishes only when it completes) and are used.

    Raises:
        RunDirError: no complete run's results there (the message says what happened).
    """
    status = read_status(out) or {}
    if status.get("status") in ("running", "publishing"):
        raise RunDirError(describe_status(out, status))
    if not (out / "run_result.json").is_file():
        if status.get("status") in ("interrupted", "failed"):
            raise RunDirError(describe_status(out, status))
        raise RunDirError(f"{out}: no run_result.json; pass the output directory of a run")
    return status


def check_output_path(path: str | Path) -> Path:
    """Refuse paths a run must never write into; returns the absolute path."""
    text = str(path)
    if text.strip() in ("", "."):
        raise RunDirError(
            f"output_dir: {text!r} is the current directory; give a directory of its own, "
            "e.g. -o outputs/run1"
        )
    absolute = Path(os.path.abspath(text))
    if absolute == Path.cwd():
        raise RunDirError(
            f"output_dir: {text!r} is the current directory; give a directory of its own, "
            "e.g. -o outputs/run1"
        )
    resolved = absolute.resolve()
    for root in FORBIDDEN_ROOTS:
        if resolved == root or root in resolved.parents:
            raise RunDirError(
                f"output_dir: {text!r} is under {root}, a kernel file system; choose a "
                "directory on disk, e.g. -o outputs/run1"
            )
    if resolved.exists() and not resolved.is_dir():
        raise RunDirError(
            f"output_dir: {text!r} exists and is not a directory; choose a directory path"
        )
    return absolute


def _is_run_dir(out: Path) -> bool:
    return (out / STATE_DIR).is_dir() or any((out / m).is_file() for m in LEGACY_MARKERS)


def _published_files(out: Path) -> list[str]:
    """Relative paths of every file the last complete run put in ``out``."""
    record = out / STATE_DIR / PUBLISHED
    if record.is_file():
        try:
            return list(json.loads(record.read_text(encoding="utf-8"))["files"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    # A run written before publish records existed: its manifest lists its files.
    manifest = out / "manifest.json"
    files: list[str] = []
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            files += list(data.get("files", {}))
            files += [m["path"] for m in data.get("exported_models", []) if m.get("path")]
            if data.get("checkpoint", {}).get("path"):
                files.append(data["checkpoint"]["path"])
        except (OSError, ValueError, AttributeError, TypeError):
            pass
    files += ["manifest.json", STATUS_FILE]
    return sorted(set(files))


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
        self.set_status("running", stage=name)

    def publish(self) -> list[str]:
        """Move the staged run into ``out``: the previous run's files go, foreign files stay.

        Idempotent: a publish cut short (crash, kill) is finished by the next ``open`` from its
        journal. Returns the published relative paths.
        """
        new = sorted(
            str(p.relative_to(self.staging)) for p in self.staging.rglob("*") if p.is_file()
        )
        journal = {"new": new, "old": _published_files(self.out)}
        atomic_write_json(self.state / JOURNAL, journal)
        self.set_status("publishing", stage="publishing")
        _apply_journal(self.out, self.staging, journal)
        return new

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)
            self._lock_fd = None


def _apply_journal(out: Path, staging: Path, journal: dict[str, list[str]]) -> None:
    state = out / STATE_DIR
    displaced = state / "displaced"
    old = set(journal["old"])
    for rel in journal["new"]:
        source, target = staging / rel, out / rel
        if not source.is_file():  # already moved by an earlier, interrupted publish
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and rel not in old and rel != STATUS_FILE:
            # A file edge-opt did not write sits where ours goes: keep it, never delete it.
            keep = displaced / rel
            keep.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, keep)
        os.replace(source, target)
    for rel in sorted(old - set(journal["new"]) - {STATUS_FILE}):
        (out / rel).unlink(missing_ok=True)
        parent = (out / rel).parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    atomic_write_json(state / PUBLISHED, {"files": journal["new"], "published_at": now_iso()})
    (state / JOURNAL).unlink(missing_ok=True)


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
    if state in ("interrupted", "failed", "unreadable") and not overwrite:
        return_hint = status.get("resume_command") or "edge-opt run CONFIG -o OUT --resume"
        raise RunDirError(
            f"{out} holds a run that did not finish ({state}); continue it with: {return_hint} "
            "(or pass --overwrite to start over)"
        )
    return "overwrite" if overwrite and state else "new"


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
    if out.is_dir() and any(out.iterdir()) and not _is_run_dir(out):
        raise RunDirError(
            f"output_dir: {out} is not empty and is not an edge-opt run; choose a new or "
            "empty directory (edge-opt never writes among files it did not create)"
        )
    # What this call creates, it removes again if it then refuses the directory.
    created = out if not out.exists() else (out / STATE_DIR if not _is_run_dir(out) else None)
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
        status = read_status(out)
        run_dir.mode = _check_mode(out, status, overwrite, resume)
        journal = out / STATE_DIR / JOURNAL
        if journal.is_file():  # a publish was cut short: finish it before anything else
            _apply_journal(out, run_dir.staging, json.loads(journal.read_text(encoding="utf-8")))
        if run_dir.mode == "overwrite":
            shutil.rmtree(run_dir.cache_root, ignore_errors=True)
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
    run_dir = RunDir(out, "report", [], status=read_status(out) or {}, _lock_fd=fd)
    try:
        journal = out / STATE_DIR / JOURNAL
        if journal.is_file():
            _apply_journal(out, run_dir.staging, json.loads(journal.read_text(encoding="utf-8")))
        shutil.rmtree(run_dir.staging, ignore_errors=True)
        run_dir.staging.mkdir(parents=True)
        yield run_dir
    except BaseException:
        run_dir.close()
        if created:
            shutil.rmtree(out / STATE_DIR, ignore_errors=True)
        raise
    run_dir.close()
