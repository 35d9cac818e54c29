"""The runtimes and deployable formats edge-opt knows: one entry per name, holding every fact
that name implies. Importing this module imports no torch (the config validates against it).

A runtime entry (``RuntimeSpec``) says how a candidate is built (``builder``, imported on first
use), which precisions it refuses and why, what file it exports and in which deployable format,
whether a torch-free device node can time it, whether the peak-RSS probe can load it, how plots
draw it, and which installed packages key its cached results. Plugins add runtimes through the
``edge_opt.runtimes`` entry-point group (``docs/extending.md``).

A deployable format (``DeployableFormat``) is a file edge-opt can write, describe in a sidecar,
probe for memory and (``onnx``, ``torchscript``) run in ``edge-opt predict``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_opt.errors import RuntimeBuildError
from edge_opt.infra.registry import BUILT_IN, Registry, check_name


@dataclass(frozen=True)
class DeployableFormat:
    """A file format a candidate is deployed as."""

    name: str
    suffix: str  # ".onnx"
    runner: str  # what runs it on the device (the sidecar's runtime)
    runner_package: str  # the distribution whose version the sidecar records
    batch: str  # the batch sizes the file takes
    predict: bool  # ``edge-opt predict`` can run it


FORMATS: Registry[DeployableFormat] = Registry("deployable format", RuntimeBuildError)
for _format in (
    DeployableFormat(
        "onnx", ".onnx", "onnxruntime", "onnxruntime", "dynamic (any batch size)", True
    ),
    DeployableFormat(
        "pte",
        ".pte",
        "executorch (XNNPACK delegate)",
        "executorch",
        "static: the run's latency_batch_size (zero-pad a shorter batch)",
        False,
    ),
    DeployableFormat(
        "torchscript", ".pt", "torchscript (torch.jit.load)", "torch", "traced at batch 1", True
    ),
):
    FORMATS.add(_format)


# The plot markers (matplotlib) and report.html shapes a runtime may take.
MARKERS = ("o", "s", "^", "v", "<", ">", "D", "d", "P", "X", "*", "p", "h", "H", "8")
SVG_SHAPES = ("circle", "square", "triangle", "diamond")


@dataclass(frozen=True)
class RuntimeSpec:
    """Everything a runtime's name implies.

    Attributes:
        name: what the config's ``runtimes`` lists.
        builder: ``"package.module:function"`` taking a ``runtimes.base.BuildRequest`` and
            returning a ``RuntimeModel``; imported the first time a candidate is built.
        description: one line for the docs and ``edge-opt validate``.
        unsupported: precision -> why this runtime cannot run it (a ``skipped`` row).
        artifact_suffix: the file it exports and runs (``.onnx``), kept in the cache and
            deployed as is; None: the module itself runs and is deployed as TorchScript.
        export_format: the deployable format of its candidates (a ``FORMATS`` name).
        int8_method: how its int8 is made (``edge-opt export`` says so).
        device_node: a torch-free device node can time its candidates (they run in ONNX
            Runtime from the exported file).
        rss_refusal: why the peak-RSS probe cannot load it in a child (None: it can).
        marker: its matplotlib marker in plots; svg_shape: its shape in report.html.
        packages: distributions whose versions key its cached results and are recorded.
        extra: the pip extra that installs what it needs (``edge-opt[executorch]``).
    """

    name: str
    builder: str
    description: str = ""
    unsupported: Mapping[str, str] = field(default_factory=dict)
    artifact_suffix: str | None = None
    export_format: str = "torchscript"
    int8_method: str = ""
    device_node: bool = False
    rss_refusal: str | None = None
    marker: str = "o"
    svg_shape: str = "circle"
    packages: tuple[str, ...] = ()
    extra: str | None = None

    def __post_init__(self) -> None:
        check_name("runtime", self.name)  # part of candidate ids and file names
        if self.marker not in MARKERS:
            raise ValueError(
                f"runtime {self.name!r}: marker {self.marker!r} is not one of {' '.join(MARKERS)}"
            )
        if self.svg_shape not in SVG_SHAPES:
            raise ValueError(
                f"runtime {self.name!r}: svg_shape {self.svg_shape!r} is not one of "
                f"{', '.join(SVG_SHAPES)}"
            )
        if self.export_format not in FORMATS:
            raise ValueError(
                f"runtime {self.name!r}: export_format {self.export_format!r} is not one of "
                f"{', '.join(FORMATS.names())}"
            )

    @property
    def artifact_name(self) -> str | None:
        """The artifact's file name in the candidate cache (``model.onnx``, ``model.pte``)."""
        return f"model{self.artifact_suffix}" if self.artifact_suffix else None

    def load_builder(self) -> Callable[[Any], Any]:
        """The builder function (its module imported now)."""
        module, _, attr = self.builder.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as exc:
            origin = RUNTIMES.origin(self.name) if self.name in RUNTIMES else BUILT_IN
            hint = ""
            if self.extra and origin == BUILT_IN:
                hint = f"; install it with pip install 'edge-opt[{self.extra}]'"
            elif self.extra:
                hint = f"; install what its plugin needs ({origin})"
            raise RuntimeBuildError(
                f"runtime {self.name!r}: cannot load its builder {self.builder} "
                f"({type(exc).__name__}: {exc}){hint}"
            ) from None


RUNTIMES: Registry[RuntimeSpec] = Registry(
    "runtime", RuntimeBuildError, group="edge_opt.runtimes", entry_type=RuntimeSpec
)
_NOT_LOWERED = "edge-opt lowers only fp32 and int8 (PT2E) to ExecuTorch's XNNPACK delegate"
for _spec in (
    RuntimeSpec(
        "eager",
        "edge_opt.runtimes.eager:build_eager",
        "the precision-converted PyTorch module as is (int8: FX static PTQ)",
        int8_method="eager FX PTQ",
        marker="o",
        svg_shape="circle",
    ),
    RuntimeSpec(
        "onnxruntime",
        "edge_opt.runtimes.onnxruntime:build_onnxruntime",
        "an ONNX export in an ONNX Runtime session (int8: ONNX Runtime static QDQ)",
        unsupported={
            "fp16": "ONNX Runtime's CPU execution provider has few fp16 kernels",
            "bf16": "ONNX Runtime's CPU execution provider has no bf16 kernels",
        },
        artifact_suffix=".onnx",
        export_format="onnx",
        int8_method="ONNX Runtime's QDQ quantizer",
        device_node=True,
        marker="s",
        svg_shape="square",
        packages=("onnx", "onnxruntime", "onnxscript"),
    ),
    RuntimeSpec(
        "compiled",
        "edge_opt.runtimes.compiled:build_compiled",
        "torch.compile with inductor freezing (int8: PT2E)",
        int8_method="PT2E (X86InductorQuantizer)",
        rss_refusal="not measured: compilation in the child would dominate",
        marker="^",
        svg_shape="triangle",
        packages=("torchao",),
    ),
    RuntimeSpec(
        "executorch",
        "edge_opt.runtimes.executorch:build_executorch",
        "a .pte program lowered to ExecuTorch's XNNPACK delegate (fp32, int8 via PT2E)",
        unsupported={
            "fp16": f"{_NOT_LOWERED}; fp16 is not built",
            "bf16": f"{_NOT_LOWERED}; bf16 is not built",
        },
        artifact_suffix=".pte",
        export_format="pte",
        int8_method="ExecuTorch's XNNPACKQuantizer",
        marker="D",
        svg_shape="diamond",
        packages=("executorch", "torchao"),
        extra="executorch",
    ),
):
    RUNTIMES.add(_spec)


def runtime(name: str) -> RuntimeSpec:
    """The registered runtime ``name`` (plugins included).

    Raises:
        RuntimeBuildError: no such runtime; the message lists the registered ones.
    """
    return RUNTIMES.get(name)


def unsupported_reason(runtime_name: str, precision: str) -> str | None:
    """Why ``runtime_name`` cannot run ``precision``, or None when it can."""
    if runtime_name not in RUNTIMES:
        return RUNTIMES.unknown(runtime_name)
    return RUNTIMES.get(runtime_name).unsupported.get(precision)


def builder_of_format(fmt: str) -> RuntimeSpec:
    """The built-in runtime that writes deployables of format ``fmt`` (``edge-opt export``)."""
    FORMATS.get(fmt)
    for name in RUNTIMES.names():
        spec = RUNTIMES.get(name)
        if spec.export_format == fmt and RUNTIMES.origin(name) == "edge-opt":
            return spec
    raise RuntimeBuildError(f"format {fmt!r}: no built-in runtime writes it")


def runtime_packages() -> tuple[str, ...]:
    """Every distribution a registered runtime names (its cache key and the manifest)."""
    seen: dict[str, None] = {}
    for name in RUNTIMES.names():
        seen.update(dict.fromkeys(RUNTIMES.get(name).packages))
    return tuple(seen)
