"""What every runtime shares: the built candidate (``RuntimeModel``) and the build request a
runtime's builder takes (the registry of runtimes is ``runtimes.registry``)."""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from edge_opt.compress.quantization import ConvertedModel


def serialized_size_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what would be deployed (int8 packed)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


@dataclass
class RuntimeModel:
    """A candidate ready to run: ``predict`` for evaluation, ``timed_call`` for the harness."""

    runtime: str
    precision: str
    predict: Callable[[torch.Tensor], torch.Tensor]  # float32 batch in, float32 logits out
    timed_call: Callable[[torch.Tensor], Callable[[], object]]  # prepares inputs outside timing
    size_bytes: int  # what would be deployed: state dict, ONNX file, .pte program
    eager: ConvertedModel  # the eager equivalent (activation liveness, RSS probe)
    artifact: Path | None = None  # the exported file (onnxruntime, executorch)
    # Builds an independent twin from the artifact with a thread count; None: not offered.
    reload: Callable[[int], RuntimeModel] | None = field(default=None, repr=False)
    # ``predict`` may run on several Python threads at once (evaluation in parallel batches).
    concurrent_predict: bool = False
    # The only batch size the deployed file takes (an ExecuTorch program); None: any.
    static_batch: int | None = None
    # One input's (C, H, W), as built; None: the module's ``input_shape`` attribute.
    input_shape: tuple[int, ...] | None = None
    # Drops what the runtime keeps between calls (its session and the buffers it grew); the
    # next call builds it again from the artifact. None: nothing to drop.
    release: Callable[[], None] | None = field(default=None, repr=False)

    def release_buffers(self) -> None:
        """Let go of the runtime's own buffers between phases (an ONNX Runtime session keeps
        its arena at the largest batch it ran: 33 MiB after evaluating SmallCNN at batch 128,
        measured); the candidate still predicts and times as before, on a new session."""
        if self.release is not None:
            self.release()

    def fresh_instance(self, threads: int) -> RuntimeModel | None:
        """An independently built twin (new session or program load, new copy of the module) to
        time beside this one; None where building one is too costly (``compiled``)."""
        if self.reload is not None:
            return self.reload(threads)
        return None

    @property
    def deployable_format(self) -> str:
        """The format ``save`` writes: the runtime's (``runtimes.registry``)."""
        from edge_opt.runtimes.registry import RUNTIMES

        return RUNTIMES.get(self.runtime).export_format

    @property
    def deployable_suffix(self) -> str:
        """The suffix of the file ``save`` writes (``.onnx``, ``.pte``, ``.pt``)."""
        from edge_opt.runtimes.registry import FORMATS

        return FORMATS.get(self.deployable_format).suffix

    def save(self, path: Path) -> Path:
        """Write the deployable artifact (ONNX file, .pte program, or TorchScript for eager)."""
        # Written aside and renamed: a full disk or a file-size limit leaves no truncated file.
        from edge_opt.infra.artifacts import atomic_write_bytes

        if self.artifact is not None:
            return atomic_write_bytes(path, self.artifact.read_bytes())
        shape = self.input_shape or input_shape(self.eager.model)
        example = self.eager.prepare_input(torch.zeros(1, *shape))
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.jit.save(torch.jit.trace(self.eager.model, example, check_trace=False), buffer)
        return atomic_write_bytes(path, buffer.getvalue())


def input_shape(model: nn.Module) -> tuple[int, ...]:
    return tuple(getattr(model, "input_shape", (1, 28, 28)))


def copied_eager(converted: ConvertedModel) -> ConvertedModel:
    """The same converted model with its own copy of the module (an independent instance)."""
    return replace(converted, model=copy.deepcopy(converted.model))


@dataclass(frozen=True)
class BuildRequest:
    """One candidate to build: the pruned float model, its eager conversion and what export
    and int8 calibration need."""

    float_model: nn.Module  # not modified
    converted: ConvertedModel  # the eager model in the candidate's precision
    calibration: Sequence[torch.Tensor]  # float batches for int8
    example: torch.Tensor  # one float input batch at the deployment batch size
    threads: int
    workdir: Path  # where exported files go
    artifact: Path | None = None  # a file built by an earlier run (the cache): load it

    @property
    def precision(self) -> str:
        return self.converted.precision
