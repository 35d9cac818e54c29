"""The per-user secret that seals cache entries (``infra.cache``): 32 random bytes, mode 0600,
made on first use and kept outside every run directory, so an entry edited or planted in a
run directory cannot carry a valid seal.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

from edge_opt.errors import EdgeOptError

SECRET_ENV = "EDGE_OPT_SECRET_DIR"
SECRET_NAME = "cache-secret"
SECRET_BYTES = 32


class CacheSecretError(EdgeOptError):
    """The cache's secret file exists but cannot be trusted (not a regular file, wrong size)."""


def secret_path() -> Path:
    """Where the cache secret lives: ``$EDGE_OPT_SECRET_DIR/cache-secret``, else
    ``$XDG_CONFIG_HOME/edge-opt/cache-secret`` (``~/.config`` when unset)."""
    folder = os.environ.get(SECRET_ENV)
    if folder:
        return Path(folder) / SECRET_NAME
    config = os.environ.get("XDG_CONFIG_HOME") or ""
    base = Path(config) if os.path.isabs(config) else Path.home() / ".config"
    return base / "edge-opt" / SECRET_NAME


def _read_secret(path: Path) -> bytes:
    info = os.lstat(path)  # FileNotFoundError: not made yet
    fix = "remove it (the next run makes a new one; cached entries are then rebuilt)"
    if not stat.S_ISREG(info.st_mode):
        raise CacheSecretError(f"cache secret {path}: not a regular file; {fix}")
    if info.st_size != SECRET_BYTES:
        raise CacheSecretError(
            f"cache secret {path}: {info.st_size} bytes, not {SECRET_BYTES}; {fix}"
        )
    if info.st_mode & 0o077:
        raise CacheSecretError(
            f"cache secret {path}: mode {stat.S_IMODE(info.st_mode):o}, others may read it; "
            f"run chmod 600 {path}, or {fix}"
        )
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        data = os.read(fd, SECRET_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != SECRET_BYTES:
        raise CacheSecretError(f"cache secret {path}: read {len(data)} bytes; {fix}")
    return data


def load_secret(path: Path) -> bytes:
    """The secret at ``path``, made on first use (random, mode 0600).

    It is written whole to a private temporary file, then linked to ``path``: the link is the
    exclusive create (like ``O_EXCL``, it fails when ``path`` exists), so of two processes
    racing, one secret wins, the other reads it, and nobody ever reads half of one.

    Raises:
        CacheSecretError: ``path`` exists but is not a secret (type, size, mode).
        OSError: it could not be made or read.
    """
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{SECRET_NAME}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(SECRET_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process made it first: theirs is the secret
    finally:
        os.unlink(temporary)
    return _read_secret(path)
