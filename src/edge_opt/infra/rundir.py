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
deleted. ``run_status.json`` is rewritten atomically at every stage change.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_opt.errors import EdgeOptError
from edge_opt.infra.artifacts import atomic_write_json

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


def read_status(out: Path, lock_held: bool = False) -> dict[str, Any] | None:
    """The directory's status, with a ``running`` whose process is gone read as interrupted.

    ``lock_held``: the caller holds the directory's lock, so no run can be in progress
    whatever pid the file names (a pid may have been reused by another process).
    """
    path = out / STATUS_FILE
    if not path.is_file():
        return None
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"status": "unreadable", "error": f"{path} is not valid JSON"}
    if not isinstance(status, dict):
        return {"status": "unreadable", "error": f"{path} does not hold a JSON object"}
    stale = lock_held or not pid_alive(status.get("pid"))
    if status.get("status") in ("running", "publishing") and stale:
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


def require_finished_run(out: Path, lock_held: bool = False) -> dict[str, Any]:
    """The status of ``out`` if it holds a complete run's results, for ``report`` and ``export``.

    A run in progress is refused. After an interrupted or failed rerun, the previous complete
    run's files are still whole (a run publishes only when it completes) and are used.

    Raises:
        RunDirError: no complete run's results there (the message says what happened).
    """
    status = read_status(out, lock_held) or {}
    if status.get("status") in ("running", "publishing"):
        raise RunDirError(describe_status(out, status))
    if (out / STATE_DIR / JOURNAL).is_file():
        raise RunDirError(
            f"{out}: its last publish was cut short; `edge-opt report {out}` or `--resume` "
            "finishes it"
        )
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
        files = _published_files(self.out)
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


def _make_way(out: Path, rel: str, old: set[str], displaced: Path) -> None:
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


def _apply_journal(out: Path, staging: Path, journal: dict[str, list[str]]) -> None:
    """Move every new file in and remove the old run's others; safe to repeat after a crash.

    SIGINT and SIGTERM are held back meanwhile (the renames take milliseconds), so that a
    stop request lands before or after the publish, never in the middle of it.
    """
    state = out / STATE_DIR
    old = set(journal["old"])
    with _signals_held():
        for rel in journal["new"]:
            source, target = staging / rel, out / rel
            if not source.is_file():  # already moved by an earlier, interrupted publish
                continue
            _make_way(out, rel, old, state / "displaced")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
        for rel in sorted(old - set(journal["new"]) - {STATUS_FILE}):
            path = out / rel
            if path.is_file() or path.is_symlink():
                path.unlink()
            parent = path.parent
            while parent != out and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        atomic_write_json(state / PUBLISHED, {"files": journal["new"], "published_at": now_iso()})
        (state / JOURNAL).unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
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


def _finish_interrupted_publish(run_dir: RunDir) -> None:
    """A publish cut short (SIGKILL, a crash) is finished from its journal: every report file
    existed before it began, so finishing it completes that run."""
    journal = run_dir.state / JOURNAL
    if not journal.is_file():
        return
    _apply_journal(run_dir.out, run_dir.staging, json.loads(journal.read_text(encoding="utf-8")))
    status = read_status(run_dir.out, lock_held=True) or {}
    status.update(status="complete", stage="done", finished_at=now_iso())
    status.pop("resume_command", None)
    status.pop("error", None)
    status["note"] = "its publish was cut short and was finished by a later command"
    atomic_write_json(run_dir.out / STATUS_FILE, status)


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
        finishing = (run_dir.state / JOURNAL).is_file()
        _finish_interrupted_publish(run_dir)  # a publish cut short is finished first
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
        _finish_interrupted_publish(run_dir)
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
