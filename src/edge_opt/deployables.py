"""What a run keeps for deployment: exported candidates and the pruned float variants."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge_opt.artifacts import atomic_write_bytes
from edge_opt.environment import sha256_file
from edge_opt.runtimes import RuntimeModel

log = logging.getLogger(__name__)


def variant_path(folder: Path, level: float) -> Path:
    return folder / f"p{round(level * 100):02d}.pt"


def save_variants(variants: dict[float, nn.Module], folder: Path) -> None:
    """Keep each pruned float model (pickled module) so `edge-opt export` can rebuild any
    candidate of a finished run without pruning or fine-tuning again."""
    folder.mkdir(parents=True, exist_ok=True)
    for level, model in variants.items():
        buffer = io.BytesIO()
        torch.save(model, buffer)
        atomic_write_bytes(variant_path(folder, level), buffer.getvalue())


def export_deployables(
    built: dict[str, RuntimeModel], candidate_ids: list[str], folder: Path
) -> list[dict[str, Any]]:
    """Write ``models/<id>.onnx`` (onnxruntime) or ``models/<id>.pt`` (TorchScript, eager and
    compiled) for the given candidates; returns their paths and sha256."""
    records = []
    for cid in candidate_ids:
        model = built.get(cid)
        if model is None:
            continue
        suffix = ".onnx" if model.artifact is not None else ".pt"
        try:
            path = model.save(folder / f"{cid}{suffix}")
        except Exception as exc:  # an export that fails is reported, not fatal
            log.warning("could not export %s: %s", cid, exc)
            records.append({"candidate_id": cid, "path": None, "error": str(exc)})
            continue
        records.append(
            {
                "candidate_id": cid,
                "path": str(path.relative_to(folder.parent)),
                "format": "onnx" if suffix == ".onnx" else "torchscript",
                "sha256": sha256_file(path),
                "bytes": path.stat().st_size,
            }
        )
    return records
