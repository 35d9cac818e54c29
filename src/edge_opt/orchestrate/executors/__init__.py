"""Executors: where the sweep's tasks run.

A run is a plan of tasks (``edge_opt.candidates.plan``): *prepare* (prune and fine-tune a level;
convert, export and evaluate a candidate) and *measure* (time a candidate on a target). An executor
runs them: ``local`` in this process (Ray is never imported, results identical to a run without
executors), ``ray`` on a Ray cluster, with measure tasks pinned to the nodes that carry the target
device's resource. Only bytes, arrays and plain dicts cross a process boundary.

Importing this package imports neither torch nor Ray (``device`` is what a device node runs).
"""

from edge_opt.orchestrate.executors.base import (
    Executor,
    NodeInfo,
    TaskFailure,
    make_executor,
    this_node,
)

__all__ = [
    "Executor",
    "NodeInfo",
    "TaskFailure",
    "make_executor",
    "this_node",
]
