"""Reading a run directory back as data: every file checked against the manifest, every path
kept inside the directory.

A run directory can be edited, copied or planted. What ``report``, ``export`` and ``compare``
read from it is therefore checked before use:

- a path taken from a run file (a checkpoint, a variant) is relative, has no ``..`` part, and
  resolves (symlinks followed) inside the run directory;
- the file is a regular file no larger than the limit, and its sha256 is the manifest's;
- a name that becomes part of a path (a candidate id) matches the id grammar
  (``candidates.plan.check_candidate_id``) before it is joined to one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path, PurePosixPath

from edge_opt.errors import RunDirError

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_RUN_FILE_BYTES = 2 * 1024 * 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_plain_relative(text: object) -> bool:
    """Whether ``text`` is a relative path with no ``..`` part, backslash or NUL (a lexical
    check: ``contained`` also follows symlinks)."""
    if not isinstance(text, str) or not text or text.startswith(("/", "~")):
        return False
    return "\\" not in text and "\0" not in text and ".." not in PurePosixPath(text).parts


def is_contained(root: Path, relative: object) -> bool:
    """Whether ``relative`` is a plain relative path that stays inside ``root`` (symlinked
    folders followed): what a recorded file name must be before it is moved or deleted."""
    if not isinstance(relative, str):
        return False
    try:
        contained(root, relative)
    except RunDirError:
        return False
    return True


def contained(root: Path, relative: str | Path) -> Path:
    """``root / relative``, refused when ``relative`` could leave ``root``.

    Raises:
        RunDirError: ``relative`` is absolute, has a ``..`` part or a backslash, or resolves
            (through a symlink) outside ``root``.
    """
    text = str(relative)
    if not is_plain_relative(text):
        raise RunDirError(
            f"{root}: the path {text!r} read from the run would leave the run directory; "
            "refused (the run files were edited: rerun the experiment)"
        )
    path = root / text
    base = root.resolve()
    if not path.resolve().is_relative_to(base):
        raise RunDirError(
            f"{path}: resolves to {path.resolve()}, outside {base}; refused (a symlink was "
            "planted in the run directory)"
        )
    return path


def read_bounded(path: Path, limit: int) -> bytes:
    """A regular file's bytes, at most ``limit`` of them, without following it into a FIFO or
    a device.

    Raises:
        RunDirError: missing, not a regular file, or larger than ``limit``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise RunDirError(
            f"{path}: cannot read ({exc.strerror or exc}); rerun to rebuild it"
        ) from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RunDirError(f"{path}: not a regular file; refused")
        if info.st_size > limit:
            raise RunDirError(
                f"{path}: {info.st_size:,} bytes, over the {limit:,}-byte limit for a run file; "
                "refused"
            )
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise RunDirError(f"{path}: grew past the {limit:,}-byte limit while read; refused")
    return data


def manifest_files(run_dir: Path) -> dict[str, str]:
    """The sha256 per relative path that the run's ``manifest.json`` records.

    Raises:
        RunDirError: the manifest is missing, unreadable, or not a map of paths to sha256.
    """
    path = run_dir / MANIFEST
    try:
        files = json.loads(read_bounded(path, MAX_MANIFEST_BYTES).decode("utf-8"))["files"]
    except RunDirError:
        raise
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise RunDirError(
            f"{path}: unreadable ({type(exc).__name__}); rerun the experiment to rebuild it"
        ) from None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _SHA256.fullmatch(v) for k, v in files.items()
    ):
        raise RunDirError(f"{path}: `files` is not a map of paths to sha256; rerun the experiment")
    return files


def verified_bytes(run_dir: Path, relative: str, limit: int = MAX_RUN_FILE_BYTES) -> bytes:
    """A run file's bytes, after checking its path, its size and its sha256 (the manifest's).

    Raises:
        RunDirError: a path that leaves the run, a file missing, not listed in the manifest,
            too large, or changed since the run.
    """
    path = contained(run_dir, relative)
    files = manifest_files(run_dir)
    if relative not in files:
        raise RunDirError(
            f"{path}: not listed in {run_dir / MANIFEST}; this run predates checked files (or "
            "was edited): rerun it"
        )
    data = read_bounded(path, limit)
    if hashlib.sha256(data).hexdigest() != files[relative]:
        raise RunDirError(
            f"{path}: sha256 differs from the manifest's; the file was changed after the run, "
            "so it is not used (rerun to rebuild it)"
        )
    return data
