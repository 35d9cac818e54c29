"""A content-keyed store of finished work: what ``--resume`` reuses and nothing is made twice.

A key is the sha256 of a canonical JSON payload naming everything the result depends on: the
parent artifact's sha256 (baseline weights, pruned variant), the step and its settings, and the
library versions. An entry is a folder ``<root>/<kind>/<key>/`` holding files and ``meta.json``;
it is built in a temporary folder and renamed into place, so an entry either exists whole or
not at all (a SIGKILL mid-write leaves nothing half-read). Each file's sha256 is recorded in
``meta.json`` and checked on every read: a tampered or truncated entry is a miss, never used.

Weights are state dicts read with ``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edge_opt import __version__

log = logging.getLogger(__name__)
META = "meta.json"


@functools.cache
def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of distributions, from their metadata (importing one, e.g. torchao
    or executorch, would cost seconds and load native code); ``absent`` when not installed."""
    versions = {}
    for dist in packages:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "absent"
    return versions


def library_versions() -> dict[str, str]:
    """Versions that change what every cached step produces; a step that depends on more (a
    runtime's libraries) puts their versions in its own payload."""
    return {
        "edge_opt": __version__,
        "torch": torch.__version__,
        **package_versions(("torch-pruning", "numpy")),
    }


def content_key(kind: str, payload: dict[str, Any]) -> str:
    """sha256 over the kind, the payload and the library versions (canonical JSON)."""
    text = json.dumps(
        {"kind": kind, "payload": payload, "versions": library_versions()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def load_state_dict_bytes(data: bytes) -> dict[str, torch.Tensor]:
    """Read a state dict without executing code (``weights_only=True``)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


@dataclass(frozen=True)
class CacheEntry:
    folder: Path
    meta: dict[str, Any]

    def path(self, name: str) -> Path:
        return self.folder / name

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()


class ArtifactCache:
    """Entries under ``root``; ``ArtifactCache(None)`` stores nothing (a library call)."""

    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def get(self, kind: str, key: str) -> CacheEntry | None:
        """The entry, or None when absent or when a file fails its sha256."""
        if self.root is None:
            return None
        folder = self.root / kind / key
        try:
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            for name, digest in meta["files"].items():
                if hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest:
                    log.warning(
                        "cache entry %s/%s: %s fails its sha256; recomputing", kind, key[:12], name
                    )
                    self.misses += 1
                    return None
        except (OSError, ValueError, KeyError, TypeError):
            self.misses += 1
            return None
        self.hits += 1
        return CacheEntry(folder, meta)

    def put(
        self,
        kind: str,
        key: str,
        meta: dict[str, Any],
        files: dict[str, bytes] | None = None,
        copies: dict[str, Path] | None = None,
    ) -> CacheEntry | None:
        """Store an entry whole (written aside, then renamed); returns it (None if disabled)."""
        if self.root is None:
            return None
        target = self.root / kind / key
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=target.parent))
        try:
            digests: dict[str, str] = {}
            for name, data in (files or {}).items():
                (staging / name).write_bytes(data)
                digests[name] = sha256_bytes(data)
            for name, source in (copies or {}).items():
                shutil.copyfile(source, staging / name)
                digests[name] = hashlib.sha256((staging / name).read_bytes()).hexdigest()
            record = {**meta, "files": digests, "key": key, "kind": kind}
            (staging / META).write_text(json.dumps(record, indent=1, default=str), "utf-8")
            for item in staging.iterdir():
                with open(item, "rb") as fh:
                    os.fsync(fh.fileno())
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return CacheEntry(target, record)
