"""The typed result of a run. Reporting reads only this (or its JSON), so a report can be
rebuilt without re-running anything."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from edge_opt.analysis.candidates import HardwareAnalysis
from edge_opt.candidates.columns import C
from edge_opt.candidates.ids import is_candidate_id
from edge_opt.errors import EdgeOptError, RunDirError
from edge_opt.infra.verified import is_plain_relative, read_bounded, verified_bytes

MAX_RESULT_BYTES = 256 * 1024 * 1024
_RERUN = "it was not written by this edge-opt version or was edited: rerun the experiment"
_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


@dataclass(frozen=True)
class RunResult:
    """Everything a run produced, as plain data."""

    config: dict[str, Any]
    environment: dict[str, Any]
    data: dict[str, Any]
    training: list[dict[str, Any]]
    baseline: dict[str, Any]
    sweep: list[dict[str, Any]]
    latency_frontier: list[str]
    energy_frontier: list[str]
    memory_frontier: list[str]
    recommendation: dict[str, Any]
    hardware_baseline: HardwareAnalysis
    hardware_recommended: HardwareAnalysis | None
    precision_tradeoffs: list[dict[str, Any]]
    hardware_candidates: list[HardwareAnalysis] = field(default_factory=list)
    exported_models: list[dict[str, Any]] = field(default_factory=list)
    device_profile: dict[str, Any] = field(default_factory=dict)
    host_profile: dict[str, Any] = field(default_factory=dict)
    hardware_profiles: list[dict[str, Any]] = field(default_factory=list)
    roofline_layers: list[dict[str, Any]] = field(default_factory=list)
    roofline_candidates: list[dict[str, Any]] = field(default_factory=list)
    projection: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    per_class_accuracy: list[dict[str, Any]] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    # One record per pruning level: how it was recovered and its loss curve (recovery.py).
    recovery: list[dict[str, Any]] = field(default_factory=list)
    started_at: str = ""
    finished_at: str = ""

    def sweep_frame(self) -> pd.DataFrame:
        columns: dict[str, None] = {}
        for row in self.sweep:
            columns.update(dict.fromkeys(row))
        return pd.DataFrame(self.sweep, columns=list(columns))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Rebuild from ``to_dict()`` output.

        Raises:
            EdgeOptError: ``data`` does not have the shape of a run result.
        """
        problem = _schema_problem(data)
        if problem is not None:
            raise EdgeOptError(f"not a run result: {problem}; {_RERUN}")
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["hardware_baseline"] = HardwareAnalysis(**data["hardware_baseline"])
        if data.get("hardware_recommended"):
            values["hardware_recommended"] = HardwareAnalysis(**data["hardware_recommended"])
        values["hardware_candidates"] = [
            HardwareAnalysis(**h) for h in data.get("hardware_candidates", [])
        ]
        return cls(**values)

    @classmethod
    def load_run(cls, run_dir: str | Path) -> RunResult:
        """Read a run directory's ``run_result.json`` after checking it against the run's
        ``manifest.json`` (its sha256, a regular file, a bounded size): what ``report``,
        ``export`` and ``compare`` read.

        Raises:
            EdgeOptError: one line naming the file: missing, changed since the run, or not a
                run result.
        """
        run_dir = Path(run_dir)
        path = run_dir / "run_result.json"
        return cls._parse(path, verified_bytes(run_dir, "run_result.json", MAX_RESULT_BYTES))

    @classmethod
    def load(cls, path: str | Path) -> RunResult:
        """Read ``run_result.json`` (or the run directory holding it).

        Raises:
            EdgeOptError: one line naming the file: unreadable, not UTF-8, not JSON (with line
                and column), or not the shape of a run result.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "run_result.json"
        try:
            raw = read_bounded(path, MAX_RESULT_BYTES)
        except RunDirError as exc:
            raise EdgeOptError(str(exc)) from None
        return cls._parse(path, raw)

    @classmethod
    def _parse(cls, path: Path, raw: bytes) -> RunResult:
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise EdgeOptError(
                f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                f"{_RERUN}"
            ) from None
        except json.JSONDecodeError as exc:
            raise EdgeOptError(
                f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                f"the file is truncated or edited: rerun the experiment"
            ) from None
        except RecursionError:
            raise EdgeOptError(f"{path}: JSON nested too deeply; {_RERUN}") from None
        try:
            return cls.from_dict(data)
        except EdgeOptError as exc:
            raise EdgeOptError(f"{path}: {exc}") from None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _field_problem(name: str, annotation: str, value: Any) -> str | None:
    """Whether a JSON value has the kind a field's annotation (``"list[str]"``) asks for."""
    if value is None:
        return None if "None" in annotation else f"{name} is null"
    base = annotation.split("[")[0].split("|")[0].strip()
    wanted = {"dict": dict, "list": list, "str": str, "HardwareAnalysis": dict}.get(base)
    if wanted is None or isinstance(value, wanted):
        return None
    return f"{name} is {_json_kind(value)}, expected {_JSON_KINDS[wanted]}"


def _schema_problem(data: Any) -> str | None:
    """The first way ``data`` differs from a ``RunResult.to_dict()``, or None."""
    if not isinstance(data, dict):
        return f"the top level is {_json_kind(data)}, expected an object"
    required = [
        f.name for f in fields(RunResult) if f.default is MISSING and f.default_factory is MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        return f"missing keys {', '.join(missing[:3])}{more}"
    for f in fields(RunResult):
        if f.name in data:
            problem = _field_problem(f.name, str(f.type), data[f.name])
            if problem is not None:
                return problem
    expected = {f.name for f in fields(HardwareAnalysis)}
    analyses = [("hardware_baseline", data["hardware_baseline"])]
    analyses += [("hardware_recommended", data["hardware_recommended"])]
    analyses += [
        (f"hardware_candidates.{i}", h) for i, h in enumerate(data.get("hardware_candidates", []))
    ]
    for name, analysis in analyses:
        if analysis is None and name == "hardware_recommended":
            continue
        if not isinstance(analysis, dict) or set(analysis) != expected:
            return f"{name} is not a hardware analysis (keys {', '.join(sorted(expected))})"
    for i, row in enumerate(data["sweep"]):
        if not isinstance(row, dict) or C.candidate_id not in row:
            return f"sweep.{i} is not a candidate row (an object with candidate_id)"
    return _id_problem(data) or _path_problem(data)


def _named_ids(data: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every candidate id the result holds that may become part of a path or be looked up."""
    named = [(f"sweep.{i}.candidate_id", r[C.candidate_id]) for i, r in enumerate(data["sweep"])]
    named += [
        (f"hardware_candidates.{i}.candidate_id", h["candidate_id"])
        for i, h in enumerate(data.get("hardware_candidates") or [])
    ]
    named += [
        (f"hardware_profiles.{i}.subject", p.get("subject") if isinstance(p, dict) else p)
        for i, p in enumerate(data.get("hardware_profiles") or [])
    ]
    for key in ("latency_frontier", "energy_frontier", "memory_frontier"):
        named += [(f"{key}.{i}", cid) for i, cid in enumerate(data[key])]
    if C.candidate_id in (data.get("recommendation") or {}):
        named.append(("recommendation.candidate_id", data["recommendation"][C.candidate_id]))
    return named


def _id_problem(data: dict[str, Any]) -> str | None:
    """The first id that is not a candidate id (a path part, a separator): a run file is
    data, never a way out of its directory."""
    for where, value in _named_ids(data):
        if value is not None and not is_candidate_id(value):
            return f"{where} is {repr(value)[:80]}, not a candidate id (like p25-int8-eager)"
    return None


def _path_problem(data: dict[str, Any]) -> str | None:
    """A recorded file path that could leave the run directory."""
    paths = [("baseline.checkpoint", (data.get("baseline") or {}).get("checkpoint"))]
    paths += [
        (f"exported_models.{i}.path", m.get("path") if isinstance(m, dict) else m)
        for i, m in enumerate(data.get("exported_models") or [])
    ]
    for where, value in paths:
        if value is not None and not is_plain_relative(value):
            return f"{where} is {repr(value)[:80]}, a path that would leave the run directory"
    return None
