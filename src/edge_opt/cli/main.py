"""The ``edge-opt`` command: parse, call one library function, map errors to exit codes.

Exit codes: 0 success; 1 a problem with the config, data, model or run (one line per problem,
no traceback unless ``-v``); 2 bad command-line usage. The commands are defined in
``cli.run`` (validate, run) and ``cli.results`` (report, compare, export, predict, profile)."""

from __future__ import annotations

import gc
import sys
from typing import Annotated

import typer

from edge_opt import __version__
from edge_opt.cli import output, results, run
from edge_opt.cli.options import app
from edge_opt.cli.output import out_console


def _version(value: bool) -> None:
    if value:
        out_console.print(f"edge-opt {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """edge-opt: prune x precision sweeps, honest measurements, Pareto frontiers, a verdict."""


# The commands, in the order `edge-opt --help` lists them.
for command in (
    run.validate,
    run.run,
    results.report,
    results.compare,
    results.export,
    results.predict,
    results.profile,
):
    app.command()(command)


def entrypoint() -> None:
    """Console-script entry point."""
    output.mark_own_process()
    try:
        app()
    except BrokenPipeError:  # e.g. `edge-opt validate ... | head`
        sys.exit(0)
    finally:
        # Everything is written: the interpreter's last garbage collection would only scan
        # what the process ends with anyway (1.3 s at the end of a default run, measured).
        gc.freeze()


if __name__ == "__main__":
    entrypoint()
