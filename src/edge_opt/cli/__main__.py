"""``python -m edge_opt.cli``: the same as the ``edge-opt`` command."""

from edge_opt.cli.main import entrypoint

entrypoint()
