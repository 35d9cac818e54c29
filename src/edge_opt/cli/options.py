"""The Typer app and the options its commands share."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from edge_opt.runtimes.registry import FORMATS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Choose which compressed variant of a small CNN to ship to an edge device, and why.",
)


# What `export --format` accepts (anything else is a usage error, exit 2): the registry's
# deployable formats.
ExportFormat = StrEnum("ExportFormat", {name: name for name in FORMATS.names()})  # type: ignore[misc]


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
OutputDirOpt = Annotated[
    str | None, typer.Option("--output-dir", "-o", help="Overrides output_dir.")
]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue an interrupted run: reuse its finished training, pruning, "
        "conversion and accuracy; time every candidate again.",
    ),
]
RefreshHostOpt = Annotated[
    bool,
    typer.Option(
        "--refresh-host-profile",
        help="Measure this machine's roofs again (config key refresh_host_profile).",
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace the finished run in the output directory (kept until the new run completes).",
    ),
]
