"""A content-keyed store of finished work: what ``--resume`` reuses and nothing is made twice.

A key (``content_key``) is the sha256 of a canonical JSON document, its inputs: the kind, a
payload naming everything the result depends on (the parent artifact's sha256, the step and its
settings), the library versions and the entry format. An entry is a folder
``<root>/<kind>/<key>/`` holding files and ``meta.json``; it is built in a temporary folder and
renamed into place, so an entry either exists whole or not at all.

An entry proves it is what its key says before it is used. ``meta.json`` stores the key's
inputs, its kind and key, and each file's sha256, and is sealed: an HMAC-SHA256 over the
canonical meta, keyed by a per-user secret kept outside every run directory (``secret_path``).
A read recomputes the key from the stored inputs, checks the seal and every file's sha256; an
entry that fails any check (edited, moved from another key, sealed with another secret, written
by an older edge-opt) is a miss with one warning line, rebuilt and replaced, never used.

Weights are state dicts read with ``torch.load(weights_only=True)``: nothing is unpickled, and
bytes that are not a state dict make the entry a miss naming the file.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.metadata
import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edge_opt import __version__
from edge_opt.errors import EdgeOptError
from edge_opt.infra.secret import SECRET_ENV, CacheSecretError, load_secret, secret_path

log = logging.getLogger(__name__)
META = "meta.json"
# 2: key inputs stored and sealed. Part of every key, so an older entry is simply never found.
FORMAT = 2


class WeightsError(EdgeOptError, ValueError):
    """Bytes that are not a state dict readable with ``weights_only=True``."""


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


def canonical_json(document: Any) -> str:
    """The one text a JSON document hashes and seals as (sorted keys; others as ``str``)."""
    return json.dumps(document, sort_keys=True, default=str)


class CacheKey(str):
    """A key: the sha256 (hex) of its ``inputs``, which it carries so ``put`` can store them."""

    inputs: dict[str, Any]

    def __new__(cls, inputs: dict[str, Any]) -> CacheKey:
        digest = hashlib.sha256(canonical_json(inputs).encode("utf-8")).hexdigest()
        key = super().__new__(cls, digest)
        key.inputs = inputs
        return key

    def __reduce__(self) -> tuple[type[CacheKey], tuple[dict[str, Any]]]:
        return CacheKey, (self.inputs,)


def content_key(kind: str, payload: dict[str, Any]) -> CacheKey:
    """The key of a ``kind`` of work: sha256 over the kind, the payload, the library versions
    and the entry format (canonical JSON)."""
    document = {"format": FORMAT, "kind": kind, "payload": payload, "versions": library_versions()}
    return CacheKey(json.loads(canonical_json(document)))  # as stored: tuples are lists


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_dict_bytes(model: torch.nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def load_state_dict_bytes(data: bytes, source: str | Path = "state dict") -> dict[str, Any]:
    """Read a state dict without executing code (``weights_only=True``).

    Raises:
        WeightsError: naming ``source``, when the bytes are not a state dict (a pickle that
            would run code, a truncated file, another object).
    """
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol is no news here
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types; none of them ran any code
        reason = ": ".join(filter(None, (type(exc).__name__, _load_failure(exc))))
        raise WeightsError(
            f"{source}: not a state dict readable with weights_only=True ({reason})"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise WeightsError(f"{source}: holds a {type(state).__name__}, not a state dict")
    return state


def _load_failure(exc: Exception) -> str:
    """torch's reason in one short line, without its advice to load with weights_only=False."""
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue")
    paragraphs = [" ".join(p.split()) for p in str(exc).split("\n\n")]
    reasons = [p for p in paragraphs if p and not p.startswith(boilerplate)]
    text = reasons[0] if reasons else paragraphs[0]
    return text.rpartition("WeightsUnpickler error:")[2].strip()[:160]


def seal(record: dict[str, Any], secret: bytes) -> str:
    """HMAC-SHA256 (hex) over the canonical meta without its seal (it holds each file's
    sha256, so the seal covers the files too)."""
    body = {k: v for k, v in record.items() if k != "seal"}
    return hmac.new(secret, canonical_json(body).encode("utf-8"), hashlib.sha256).hexdigest()


# ------------------------------------------------------------------------------ entries
@dataclass(frozen=True)
class CacheEntry:
    folder: Path
    meta: dict[str, Any]
    state_dicts: dict[str, dict[str, Any]] = field(default_factory=dict)  # checked on ``get``

    def path(self, name: str) -> Path:
        return self.folder / name

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()


class _Rejected(Exception):
    """Why an entry is not what its key says (the reason, for the one warning line)."""


def _plain_name(name: str) -> bool:
    return name not in ("", ".", "..", META) and Path(name).name == name and "\\" not in name


def _verified_entry(
    folder: Path, kind: str, key: str, secret: bytes, state_dicts: Sequence[str] = ()
) -> CacheEntry:
    """The entry at ``folder`` once it proves it is ``kind``/``key``; its ``state_dicts``
    files read (``weights_only``). Raises ``_Rejected`` with the reason otherwise."""
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _Rejected(f"{META} is missing or unreadable ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format", 1) if isinstance(meta, dict) else "?"
        raise _Rejected(f"entry format {found}, not {FORMAT} (written by another edge-opt)")
    found_seal = str(meta.get("seal", "")).encode("utf-8")  # bytes: any text compares
    if not hmac.compare_digest(found_seal, seal(meta, secret).encode("utf-8")):
        raise _Rejected("its seal does not match (meta or a file edited, or another secret)")
    if meta.get("kind") != kind or meta.get("key") != key:
        raise _Rejected(f"it was stored as {meta.get('kind')}/{str(meta.get('key'))[:12]}")
    inputs = meta.get("inputs")
    if not isinstance(inputs, dict) or inputs.get("kind") != kind or CacheKey(inputs) != key:
        raise _Rejected("its stored key inputs do not hash to its key")
    files = meta.get("files")
    if not isinstance(files, dict) or not all(_plain_name(str(n)) for n in files):
        raise _Rejected("its file list is malformed")
    loaded: dict[str, dict[str, Any]] = {}
    for name, digest in files.items():
        try:
            data = (folder / name).read_bytes()
        except OSError:
            raise _Rejected(f"{folder / name} is missing") from None
        if sha256_bytes(data) != digest:
            raise _Rejected(f"{folder / name} fails its sha256")
        if name in state_dicts:
            try:
                loaded[name] = load_state_dict_bytes(data, folder / name)
            except WeightsError as exc:
                raise _Rejected(str(exc)) from None
    if missing := [n for n in state_dicts if n not in loaded]:
        raise _Rejected(f"it holds no {', '.join(missing)}")
    return CacheEntry(folder, meta, loaded)


class ArtifactCache:
    """Entries under ``root``; ``ArtifactCache(None)`` stores nothing (a library call).

    ``secret_file`` defaults to ``secret_path()``; when it cannot be made or trusted, the cache
    is off for this process (one warning): nothing is reused, nothing unproven is used.
    """

    def __init__(self, root: str | Path | None, secret_file: Path | None = None) -> None:
        self.root: Path | None = None
        self.hits = 0
        self.misses = 0
        self._secret = b""
        if root is None:
            return
        path = secret_file or secret_path()
        try:
            self._secret = load_secret(path)
        except (OSError, CacheSecretError) as exc:
            log.warning(
                "cache off: %s; nothing is reused (set %s to a private folder outside the run)",
                exc,
                SECRET_ENV,
            )
            return
        self.root = Path(root)

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def get(self, kind: str, key: str, state_dicts: Sequence[str] = ()) -> CacheEntry | None:
        """The entry of ``kind``/``key`` once it proves it is that (see the module's doc), with
        its ``state_dicts`` files read; None when absent or rejected (one warning, naming the
        entry and the reason; the caller rebuilds it and ``put`` replaces it)."""
        if self.root is None:
            return None
        folder = self.root / kind / key
        if not folder.is_dir():
            self.misses += 1
            return None
        try:
            entry = _verified_entry(folder, kind, key, self._secret, state_dicts)
        except _Rejected as reason:
            log.warning("cache entry %s/%s not used: %s; rebuilding it", kind, key[:12], reason)
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(
        self,
        kind: str,
        key: CacheKey,
        meta: dict[str, Any],
        files: dict[str, bytes] | None = None,
        copies: dict[str, Path] | None = None,
    ) -> CacheEntry | None:
        """Store a sealed entry whole (written aside, then renamed); returns it (None if
        disabled). ``key`` comes from ``content_key(kind, ...)``: its inputs are stored."""
        if not isinstance(key, CacheKey) or key.inputs.get("kind") != kind:
            raise TypeError(
                f"key: {key!r} is not a key of {kind!r}; make it with content_key({kind!r}, ...)"
            )
        if bad := [n for n in [*(files or {}), *(copies or {})] if not _plain_name(n)]:
            raise ValueError(f"files: {bad} are not plain file names (no folders, not {META})")
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
                digests[name] = sha256_bytes((staging / name).read_bytes())
            owned = {"files": digests, "format": FORMAT, "inputs": key.inputs, "key": str(key)}
            record = json.loads(canonical_json({**meta, **owned, "kind": kind}))  # as read back
            record["seal"] = seal(record, self._secret)
            (staging / META).write_text(json.dumps(record, indent=1), "utf-8")
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
