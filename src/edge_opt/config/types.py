"""Strict scalar types, the bounds every count and size of a config obeys, and the names a
registry owns (runtimes, precisions, devices, dataset formats, executors, samplers, int8
engines): the config accepts exactly the registered names, plugins' included."""

from __future__ import annotations

import importlib
import platform
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, AllowInfNan, Field, Strict
from pydantic_core import PydanticCustomError

if TYPE_CHECKING:
    from edge_opt.infra.registry import Registry

# Strict scalars: YAML's own type must be right (no "64" -> 64, no yes -> 1, no 2.0 -> 2);
# an int is still accepted where a float is meant. Floats must be finite.
Int = Annotated[int, Strict()]
Real = Annotated[float, Strict(), AllowInfNan(False)]
Flag = Annotated[bool, Strict()]
MAX_SEED = 2**32 - 1  # numpy's legacy seeding and most tools take 32-bit seeds
MAX_EPOCHS = 10_000
MAX_IMAGES = 10_000_000
MAX_BATCH = 65_536
MAX_LIST = 100
MAX_BUDGET_MB = 1_048_576.0  # 1 TiB
Seed = Annotated[int, Strict(), Field(ge=0, le=MAX_SEED)]
Dim = Annotated[int, Strict(), Field(ge=1, le=MAX_BATCH)]
Stat = Annotated[float, Strict(), AllowInfNan(False)]

# Where each registry lives (imported when a name is checked: the registries are torch-free).
REGISTRIES = {
    "runtime": "edge_opt.runtimes.registry:RUNTIMES",
    "precision": "edge_opt.compress.precisions:PRECISIONS",
    "engine": "edge_opt.compress.precisions:ENGINES",
    "device": "edge_opt.analysis.device_profiles:DEVICES",
    "dataset format": "edge_opt.data.formats.registry:DATASET_FORMATS",
    "executor": "edge_opt.orchestrate.executors.registry:EXECUTORS",
    "sampler": "edge_opt.search.samplers:SAMPLERS",
}


def registry(kind: str) -> Registry[Any]:
    """The registry of ``kind`` (a key of ``REGISTRIES``)."""
    module, _, attr = REGISTRIES[kind].partition(":")
    return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def default_engine(machine: str) -> str | None:
    """The int8 engine ``quantization_backend: auto`` means on a CPU (``platform.machine()``):
    ``x86`` on x86-64, ``qnnpack`` on Arm; None when torch ships none for it."""
    engines = registry("engine")
    for name in ("x86", "qnnpack", *engines.names()):
        if machine in engines.get(name).machines:
            return name
    return None


def this_cpu_engine() -> str:
    """The int8 engine for this CPU (what ``quantization_backend: auto`` resolves to)."""
    return default_engine(platform.machine()) or "x86"


def detected_device(board: str | None) -> str | None:
    """The registered device profile whose ``boards`` names this board (the device tree's
    model, ``infra.cpu.board_model``), or None."""
    if not board:
        return None
    devices = registry("device")
    for name in devices.names():
        profile = devices.get(name)
        if profile is not None and any(part in board for part in profile.boards):
            return name
    return None


def allowed_text(names: list[str]) -> str:
    """``'a', 'b' or 'c'``: how pydantic lists a Literal's values."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def registered(
    kind: str, extra: tuple[str, ...] = (), only: Callable[[Any], bool] | None = None
) -> Callable[[str], str]:
    """A validator accepting the names registered in ``kind`` (those whose entry passes
    ``only``), and the ``extra`` ones."""

    def check(value: str) -> str:
        names = registry(kind)
        valid = [n for n in names.names() if only is None or only(names.get(n))]
        if value in valid or value in extra:
            return value
        allowed = allowed_text([*extra, *valid])
        problems = names.problems()
        why = f" ({'; '.join(problems)})" if problems else ""
        raise PydanticCustomError("registered", f"Input should be {allowed}{why}")

    return check


def name_of(
    kind: str, extra: tuple[str, ...] = (), only: Callable[[Any], bool] | None = None
) -> Any:
    """A config field type: a string that must be registered in ``kind``."""
    return Annotated[str, Strict(), AfterValidator(registered(kind, extra, only))]


RuntimeName = name_of("runtime")
PrecisionName = name_of("precision")
DeviceName = name_of("device", ("auto",))
ExecutorName = name_of("executor")
SamplerName = name_of("sampler")
# ``factory`` is written as ``dataset: {factory: ...}``: a format names a reader of ``path``.
DatasetFormatName = name_of("dataset format", only=lambda spec: spec.takes_path)
QuantBackend = name_of("engine", ("auto",))


def plugin_problems() -> list[str]:
    """One line per installed plugin that was left out (it failed to load, gave the wrong kind
    of object, or took a name already registered), over every registry."""
    problems: list[str] = []
    for kind in REGISTRIES:
        problems += [p for p in registry(kind).problems() if p not in problems]
    return problems
