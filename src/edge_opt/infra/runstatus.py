"""A run directory's status file (``run_status.json``) and the checks on a directory before
anything is written: what it holds, whether its process lives, whether it is a finished run."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_opt.errors import RunDirError
from edge_opt.infra.verified import is_contained

STATE_DIR = ".edge-opt"
STATUS_FILE = "run_status.json"
PUBLISHED = "published.json"
JOURNAL = "publish_journal.json"
FORBIDDEN_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
# Names that mark a directory as an edge-opt run written before run directories were locked.
LEGACY_MARKERS = ("run_status.json", "manifest.json")


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


def is_run_dir(out: Path) -> bool:
    return (out / STATE_DIR).is_dir() or any((out / m).is_file() for m in LEGACY_MARKERS)


def published_files(out: Path) -> list[str]:
    """Relative paths of every file the last complete run put in ``out``."""
    record = out / STATE_DIR / PUBLISHED
    if record.is_file():
        try:
            recorded = json.loads(record.read_text(encoding="utf-8"))["files"]
            return [f for f in recorded if is_contained(out, f)]  # data: never a way out
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
    # A record is data: a name that would leave the directory (an edited or planted record)
    # is never moved or deleted.
    return sorted({f for f in files if is_contained(out, f)})
