"""What a run keeps for deployment: exported candidates and the pruned float variants."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from edge_opt.infra.artifacts import atomic_write_bytes
from edge_opt.infra.cache import state_dict_bytes
from edge_opt.infra.environment import sha256_file
from edge_opt.runtimes.base import RuntimeModel

log = logging.getLogger(__name__)


def variant_path(folder: Path, level: float) -> Path:
    return folder / f"p{round(level * 100):02d}.pt"


def save_variants(variants: dict[float, nn.Module], folder: Path) -> None:
    """Keep each pruned float model's state dict so `edge-opt export` can rebuild any
    candidate of a finished run without fine-tuning again.

    Only tensors are stored (read back with ``weights_only=True``, which executes no code):
    the pruned structure is rebuilt by pruning the baseline checkpoint at the same level,
    which is deterministic, then these weights are loaded into it (shapes are checked).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for level, model in variants.items():
        atomic_write_bytes(variant_path(folder, level), state_dict_bytes(model))


def export_deployables(
    built: dict[str, RuntimeModel],
    candidate_ids: list[str],
    folder: Path,
    data: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Write ``models/<id>.onnx`` (onnxruntime), ``models/<id>.pte`` (executorch) or
    ``models/<id>.pt`` (TorchScript, eager and compiled) for the given candidates; returns
    their paths, formats and sha256. With ``data`` (the run's data description), each also
    gets its sidecar ``models/<id>.json``."""
    records = []
    for cid in candidate_ids:
        model = built.get(cid)
        if model is None:
            continue
        suffix = model.deployable_suffix
        try:
            path = model.save(folder / f"{cid}{suffix}")
        except Exception as exc:  # an export that fails is reported, not fatal
            log.warning("could not export %s: %s", cid, exc)
            records.append({"candidate_id": cid, "path": None, "error": str(exc)})
            continue
        fmt = model.deployable_format
        record = {
            "candidate_id": cid,
            "path": str(path.relative_to(folder.parent)),
            "format": fmt,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }
        if data is not None:
            record["sidecar"] = str(
                describe_deployable(path, cid, fmt, model, data).relative_to(folder.parent)
            )
        records.append(record)
    return records


def describe_deployable(
    path: Path,
    cid: str,
    fmt: str,
    model: RuntimeModel,
    data: dict[str, Any],
    measured_as: str | None = None,
) -> Path:
    """Write the sidecar of one deployable file (``edge_opt.deploy.sidecar``); returns its path."""
    import torch

    from edge_opt.deploy.sidecar import build_sidecar, write_sidecar

    shape = tuple(data["input_shape"])
    dtype = "float32"
    if fmt == "torchscript":
        dtype = str(model.eager.prepare_input(torch.zeros(1, *shape)).dtype).removeprefix("torch.")
    content = build_sidecar(
        path,
        cid,
        fmt,
        model.precision,
        shape,
        dtype,
        data,
        measured_as or model.runtime,
        model.static_batch,
    )
    return write_sidecar(path, content)
