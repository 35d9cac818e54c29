"""Re-export a candidate of a finished run as a deployable file (ONNX or TorchScript).

A run keeps each pruned float model in ``models/variants/`` and its resolved config, so any
measured candidate can be rebuilt exactly (int8 is re-calibrated on the same seeded batches)
without pruning or training again.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from edge_opt.config import build_config
from edge_opt.data import calibration_inputs, load_raw_dataset, split_dataset
from edge_opt.deployables import variant_path
from edge_opt.environment import sha256_file
from edge_opt.errors import EdgeOptError
from edge_opt.preparation import build_configured_model
from edge_opt.results import RunResult
from edge_opt.runtimes import build_runtime

log = logging.getLogger(__name__)
FORMATS = ("onnx", "torchscript")


@dataclass(frozen=True)
class ExportResult:
    candidate_id: str
    path: str
    format: str
    sha256: str
    bytes: int
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(result: RunResult, candidate_id: str) -> dict[str, Any]:
    for row in result.sweep:
        if row["candidate_id"] == candidate_id:
            if row["status"] != "ok":
                raise EdgeOptError(
                    f"candidate {candidate_id!r} was {row['status']} in this run "
                    f"({row.get('error')}); pick a measured one"
                )
            return row
    known = ", ".join(r["candidate_id"] for r in result.sweep)
    raise EdgeOptError(f"candidate {candidate_id!r} is not in this run; candidates: {known}")


def export_candidate(
    run_dir: str | Path,
    candidate_id: str | None = None,
    fmt: str | None = None,
    output: str | Path | None = None,
) -> ExportResult:
    """Rebuild a candidate of a finished run and write it as ONNX or TorchScript.

    Args:
        run_dir: the run's output directory (holding ``run_result.json``).
        candidate_id: default: the run's recommended candidate.
        fmt: ``onnx`` or ``torchscript``; default: ``onnx`` for onnxruntime candidates,
            ``torchscript`` otherwise.
        output: file to write; default ``<run_dir>/models/<candidate_id>.<onnx|pt>``.

    Raises:
        EdgeOptError: no such run or candidate (the message lists the valid ones), an
            ``output`` that is a directory, a format the candidate cannot take, or a failed
            rebuild. Nothing is written unless the export succeeds.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "run_result.json").is_file():
        raise EdgeOptError(f"{run_dir}: no run_result.json; pass the output directory of a run")
    if output is not None and Path(output).is_dir():
        name = f"{candidate_id or 'candidate'}.{'onnx' if fmt == 'onnx' else 'pt'}"
        raise EdgeOptError(
            f"--output {output} is a directory; give a file path, e.g. {Path(output) / name}"
        )
    result = RunResult.load(run_dir)
    cid = candidate_id or result.recommendation.get("candidate_id")
    if cid is None:
        raise EdgeOptError("this run recommended no candidate; pass --candidate ID")
    row = _row(result, cid)
    runtime, precision, level = row["runtime"], row["precision"], float(row["pruning_level"])
    fmt = fmt or ("onnx" if runtime == "onnxruntime" else "torchscript")
    if fmt not in FORMATS:
        raise EdgeOptError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    note = "the measured candidate"
    build_as = "onnxruntime" if fmt == "onnx" else "eager"
    if build_as != runtime:
        note = f"measured as {runtime}; exported as {fmt}" + (
            " (int8 by ONNX Runtime's QDQ quantizer, not the measured int8 model)"
            if fmt == "onnx" and precision == "int8"
            else ""
        )
    cfg = build_config(result.config)
    built_model = build_configured_model(cfg)  # imports a user's factory module if any
    source = variant_path(run_dir / "models" / "variants", level)
    if not source.is_file():
        raise EdgeOptError(f"{source} is missing: this run predates saved variants; rerun it")
    variant = torch.load(source, map_location="cpu", weights_only=False).eval()  # our own file
    calibration: list[torch.Tensor] = []
    if precision == "int8":
        raw = load_raw_dataset(cfg.dataset, cfg.data_dir, built_model.input_shape)
        splits = split_dataset(raw, cfg.train_subset, cfg.val_subset, cfg.test_subset, cfg.seed)
        calibration = calibration_inputs(splits, cfg.batch_size, cfg.calibration_batches, cfg.seed)
    example = torch.zeros(1, *built_model.input_shape)
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    target = Path(output) if output else run_dir / "models" / f"{cid}{suffix}"
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
    return ExportResult(cid, str(path), fmt, sha256_file(path), path.stat().st_size, note)
