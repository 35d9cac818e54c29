"""One exception family for the whole library.

The library raises these and never prints or exits; the CLI maps them to exit codes.
Errors about bad input (config, data, model, pruning level, measurement arguments) are also
``ValueError``s, so code written against edge-opt v1's API (``except ValueError``) still catches
them; ``except EdgeOptError`` catches every one.
"""

from __future__ import annotations


class EdgeOptError(Exception):
    """Base class of every error edge-opt raises on purpose."""


class ConfigError(EdgeOptError, ValueError):
    """The configuration is invalid. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid configuration{where}:\n{lines}")


class RunDirError(EdgeOptError, ValueError):
    """The output directory cannot be used as asked (the message says why and what to do)."""


class DataError(EdgeOptError, ValueError):
    """A dataset cannot be found or read."""


class ModelError(EdgeOptError, ValueError):
    """A model cannot be built, loaded or transformed."""


class TrainingDivergedError(ModelError):
    """Training produced a NaN or infinite loss (usually a learning rate that is too high)."""


class PruningError(EdgeOptError, ValueError):
    """Structured pruning cannot be applied to this model or level."""


class QuantizationError(EdgeOptError):
    """A precision conversion failed; the candidate is recorded as failed, never mislabelled."""


class MeasurementError(EdgeOptError, ValueError):
    """A measurement cannot be taken (empty loader, bad arguments)."""


class RuntimeBuildError(EdgeOptError):
    """A runtime (ONNX export, ONNX Runtime, torch.compile) could not build a candidate."""


class ExecutorError(EdgeOptError):
    """The executor cannot run tasks: Ray cannot connect, or a device node is missing."""


class DeviceLostError(ExecutorError):
    """The target device's node left mid-run: its candidates stay pending (``--resume``)."""
