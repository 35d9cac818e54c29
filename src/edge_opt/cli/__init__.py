"""The ``edge-opt`` command line: parse, call one library function, map errors to exit codes."""

from edge_opt.cli.main import app, entrypoint

__all__ = ["app", "entrypoint"]
