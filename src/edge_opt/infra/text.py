"""Small text helpers shared by messages, logs and reports."""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 200


def percent(fraction: float) -> str:
    """A fraction as a percentage with the digits it needs: 0.02 -> '2%', 0.002 -> '0.2%'."""
    return f"{fraction * 100:.3g}%"


def name_problem(name: object) -> str | None:
    """Why a class name cannot be printed as one field of one line (None: it can).

    Names come from folder names, npz arrays and sidecars: a newline or a tab in one would
    forge lines in ``predict``'s tab-separated output or split a report's table row.
    """
    if not isinstance(name, str):
        return f"{type(name).__name__}, not a string"
    if not name.strip():
        return "empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"{len(name)} characters, over the {MAX_NAME_LENGTH}-character limit"
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return f"holds the control character {char!r}"
    return None


def one_field(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\t``, ``\\x1b``): safe as one
    field of one tab-separated line (a file name given on the command line)."""
    if not any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
        return text
    return "".join(
        c.encode("unicode_escape").decode("ascii")
        if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
        else c
        for c in text
    )
