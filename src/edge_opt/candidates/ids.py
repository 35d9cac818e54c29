"""Candidate ids: how one is made, and the grammar every id read back must match.

An id becomes part of file and folder names (``models/<id>.onnx``, ``candidates/<id>/``), so
one read from a run file is checked before it is joined to a path: a run directory is data,
never a way out of itself.
"""

from __future__ import annotations

import re

from edge_opt.errors import EdgeOptError

# p25-int8-eager, p100-fp16-onnxruntime, t007-p31-int8-eager (a search trial), baseline-fp32
# (the hardware analysis of the trained baseline); the precision and runtime parts follow the
# registry's name rule (lower case, digits, '_', single '-').
ID_RULE = re.compile(r"((t[0-9]{3,6}-)?p[0-9]{2,3}|baseline)-[a-z][a-z0-9_]*(-[a-z0-9_]+)*")
MAX_ID_LENGTH = 100


def candidate_id(pruning_level: float, precision: str, runtime: str) -> str:
    """Stable, filesystem-safe id: ``p25-int8-eager`` for 25% pruning, int8, eager."""
    return f"p{round(pruning_level * 100):02d}-{precision}-{runtime}"


def is_candidate_id(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_ID_LENGTH and bool(ID_RULE.fullmatch(value))


def check_candidate_id(value: object, where: str) -> str:
    """``value`` if it is a candidate id, else one error naming where it was read.

    Raises:
        EdgeOptError: not an id (a path part, a separator, a control character...).
    """
    if not is_candidate_id(value):
        shown = repr(value)[:80]
        raise EdgeOptError(
            f"{where}: {shown} is not a candidate id (like p25-int8-eager); the run files were "
            "edited or not written by edge-opt: rerun the experiment"
        )
    return str(value)
