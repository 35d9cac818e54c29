"""The Typer app and the options its commands share."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Choose which compressed variant of a small CNN to ship to an edge device, and why.",
)


class ExportFormat(StrEnum):
    """What `export --format` accepts (anything else is a usage error, exit 2)."""

    onnx = "onnx"
    pte = "pte"
    torchscript = "torchscript"


ConfigArg = Annotated[Path, typer.Argument(help="YAML config, e.g. configs/default.yaml.")]


SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key: --set epochs=1 (repeatable)."),
]


VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logs and tracebacks.")]


QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print only the final result and errors (no progress)."),
]
