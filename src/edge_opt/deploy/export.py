"""Re-export a candidate of a finished run as a deployable file (ONNX, ExecuTorch .pte or
TorchScript).

A run keeps each pruned float model in ``models/variants/`` and its resolved config, so any
measured candidate can be rebuilt exactly (int8 is re-calibrated on the same seeded batches)
without pruning or training again.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from edge_opt.candidates.columns import C
from edge_opt.compress.pruning import structured_channel_prune
from edge_opt.config.loading import build_config
from edge_opt.data.formats import load_dataset
from edge_opt.data.splits import calibration_inputs, split_dataset
from edge_opt.deploy.deployables import describe_deployable, variant_path
from edge_opt.errors import EdgeOptError
from edge_opt.infra.cache import load_state_dict_bytes
from edge_opt.infra.environment import sha256_file
from edge_opt.infra.rundir import locked_run_dir
from edge_opt.infra.runstatus import require_finished_run
from edge_opt.infra.verified import contained, verified_bytes
from edge_opt.models.zoo import build_configured_model
from edge_opt.reports.result import RunResult
from edge_opt.runtimes.build import build_runtime
from edge_opt.runtimes.registry import FORMATS, RUNTIMES, builder_of_format

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    candidate_id: str
    path: str
    format: str
    sha256: str
    bytes: int
    note: str
    sidecar: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(result: RunResult, candidate_id: str) -> dict[str, Any]:
    for row in result.sweep:
        if row[C.candidate_id] == candidate_id:
            if row[C.status] != "ok":
                raise EdgeOptError(
                    f"candidate {candidate_id!r} was {row['status']} in this run "
                    f"({row.get('error')}); pick a measured one"
                )
            return row
    known = ", ".join(r[C.candidate_id] for r in result.sweep)
    raise EdgeOptError(f"candidate {candidate_id!r} is not in this run; candidates: {known}")


def _weights(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return load_state_dict_bytes(data)
    except Exception as exc:  # truncated, empty, or not a state dict: never executed
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise EdgeOptError(f"{path}: not a readable state dict ({detail}); rerun the run") from None


def _load_variant(
    run_dir: Path,
    result: RunResult,
    model: torch.nn.Module,
    input_shape: tuple[int, int, int],
    level: float,
    scope: str,
    channel_multiple: int = 1,
) -> torch.nn.Module:
    """The pruned float model of ``level``: baseline checkpoint -> prune -> variant weights.

    Both files are checked against the manifest and read with ``weights_only=True``: a
    tampered run directory is refused and never executes code.
    """
    checkpoint = result.baseline["checkpoint"]
    baseline = _weights(run_dir / checkpoint, verified_bytes(run_dir, checkpoint))
    try:
        model.load_state_dict(baseline)
    except RuntimeError as exc:
        raise EdgeOptError(f"{run_dir / checkpoint}: does not fit the model ({exc})") from None
    example = torch.zeros(1, *input_shape)
    relative = str(variant_path(Path("models") / "variants", level))
    weights = _weights(run_dir / relative, verified_bytes(run_dir, relative))
    pruned = structured_channel_prune(
        model, level, example, scope=scope, channel_multiple=channel_multiple
    )
    try:
        pruned.load_state_dict(weights)
    except RuntimeError as exc:
        raise EdgeOptError(f"{run_dir / relative}: does not fit the pruned model ({exc})") from None
    return pruned.eval()


def export_candidate(
    run_dir: str | Path,
    candidate_id: str | None = None,
    fmt: str | None = None,
    output: str | Path | None = None,
    allow_factories: Sequence[str] = (),
) -> ExportResult:
    """Rebuild a candidate of a finished run and write it as ONNX, .pte or TorchScript.

    Args:
        run_dir: the run's output directory (holding ``run_result.json``).
        candidate_id: default: the run's recommended candidate.
        fmt: ``onnx``, ``pte`` (ExecuTorch, XNNPACK) or ``torchscript``; default: ``onnx``
            for onnxruntime candidates, ``pte`` for executorch ones, ``torchscript`` otherwise.
        output: file to write; default ``<run_dir>/models/<candidate_id>.<onnx|pte|pt>``.
        allow_factories: the ``module:function`` factories (model or dataset) the run's
            config names that the caller trusts; any other is refused before it is imported.

    Raises:
        EdgeOptError: no such run or candidate (the message lists the valid ones), an
            ``output`` that is a directory, a format the candidate cannot take, or a failed
            rebuild. Nothing is written unless the export succeeds.
    """
    run_dir = Path(run_dir)
    if output is not None and Path(output).is_dir():
        suffix = FORMATS.get(fmt).suffix if fmt in FORMATS else ".pt"
        name = f"{candidate_id or 'candidate'}{suffix}"
        raise EdgeOptError(
            f"--output {output} is a directory; give a file path, e.g. {Path(output) / name}"
        )
    with locked_run_dir(run_dir) as locked:  # no run may change the directory meanwhile
        require_finished_run(locked.out, lock_held=True)
        exported = _export(locked.out, candidate_id, fmt, output, allow_factories)
        for written in (exported.path, exported.sidecar):
            resolved = Path(str(written)).resolve()
            if written and resolved.is_relative_to(locked.out.resolve()):
                locked.record_published(resolved.relative_to(locked.out.resolve()))
        return exported


def run_factories(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The user code a run's config names (``model.factory``, ``dataset.factory``): what
    rebuilding its model or data would import and call."""
    named = []
    for section in ("model", "dataset"):
        value = config.get(section)
        factory = value.get("factory") if isinstance(value, dict) else None
        if factory is not None:
            named.append((f"{section}.factory", str(factory)))
    return named


def check_factories_allowed(config: dict[str, Any], allowed: Sequence[str]) -> None:
    """A run directory is data: the code its config names is imported only when the user
    names it too (``--allow-factory``), so an edited run file cannot make ``export`` run code.

    Raises:
        EdgeOptError: a factory the user did not name, with the option that allows it.
    """
    for key, factory in run_factories(config):
        if factory not in allowed:
            raise EdgeOptError(
                f"this run's {key} is {factory[:120]!r}: rebuilding the candidate would import "
                f"and call it; if that is your code, pass --allow-factory {factory[:120]}"
            )


def _export(
    run_dir: Path,
    candidate_id: str | None,
    fmt: str | None,
    output: str | Path | None,
    allowed: Sequence[str] = (),
) -> ExportResult:
    result = RunResult.load_run(run_dir)
    check_factories_allowed(result.config, allowed)
    cid = candidate_id or result.recommendation.get(C.candidate_id)
    if cid is None:
        raise EdgeOptError("this run recommended no candidate; pass --candidate ID")
    row = _row(result, cid)
    if (result.config.get("search") or {}).get("strategy", "grid") != "grid":
        raise EdgeOptError(
            f"--candidate {cid}: this run searched per-group pruning ratios, and export rebuilds "
            f"grid candidates only; the run already wrote its recommended and frontier "
            f"candidates to {run_dir / 'models'}"
        )
    runtime, precision, level = row[C.runtime], row[C.precision], float(row[C.pruning_level])
    measured = RUNTIMES.get(runtime) if runtime in RUNTIMES else None
    fmt = fmt or (measured.export_format if measured is not None else "torchscript")
    if fmt not in FORMATS:
        raise EdgeOptError(f"--format: {fmt!r} is not one of {', '.join(FORMATS.names())}")
    # The candidate's own runtime writes its own format; another format is another build.
    builder = measured if measured is not None and measured.export_format == fmt else None
    builder = builder or builder_of_format(fmt)
    build_as, suffix = builder.name, FORMATS.get(fmt).suffix
    note = "the measured candidate"
    if build_as != runtime:
        note = f"measured as {runtime}; exported as {fmt}" + (
            f" (int8 by {builder.int8_method}, not the measured int8 model)"
            if precision == "int8" and fmt != "torchscript"
            else ""
        )
    cfg = build_config(result.config)
    built_model = build_configured_model(cfg)  # imports a user's factory module if any
    variant = _load_variant(
        run_dir,
        result,
        built_model.model,
        built_model.input_shape,
        level,
        cfg.pruning_scope,
        cfg.channel_multiple,
    )
    calibration: list[torch.Tensor] = []
    if precision == "int8":
        raw = load_dataset(cfg.dataset, built_model.input_shape, cfg.data_dir)
        splits = split_dataset(raw, cfg.train_subset, cfg.val_subset, cfg.test_subset, cfg.seed)
        calibration = calibration_inputs(splits, cfg.batch_size, cfg.calibration_batches, cfg.seed)
    # A .pte program has a static batch: the run's deployment batch, as in the sweep.
    batch = cfg.latency_batch_size if fmt == "pte" else 1
    example = torch.zeros(batch, *built_model.input_shape)
    target = Path(output) if output else contained(run_dir, f"models/{cid}{suffix}")
    with tempfile.TemporaryDirectory(prefix="edge-opt-export-") as tmp:
        runtime_model = build_runtime(
            build_as,
            variant,
            precision,
            calibration,
            example,
            cfg.benchmark_threads,
            cfg.quantization_backend,
            Path(tmp),
        )
        path = runtime_model.save(target)
        data = {"input_shape": list(built_model.input_shape), **result.data}
        sidecar = describe_deployable(path, cid, fmt, runtime_model, data, runtime)
    return ExportResult(
        cid, str(path), fmt, sha256_file(path), path.stat().st_size, note, str(sidecar)
    )
