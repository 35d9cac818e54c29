"""The ``edge-opt`` command line: parse, call one library function, map errors to exit codes."""

from edge_opt.cli.main import entrypoint
from edge_opt.cli.options import app

__all__ = ["app", "entrypoint"]
