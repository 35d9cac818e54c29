"""What a column of the candidate schema is (``candidates.columns`` lists them): its kind,
unit, table format and meaning; a name with a ``{placeholder}`` is a family of columns."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a column is."""

    IDENTITY = "identity"  # names the candidate
    OUTCOME = "outcome"  # what became of it (status, error)
    SETTING = "setting"  # a configured value repeated on the row
    MEASURED = "measured"  # measured on a machine
    MODELLED = "modelled"  # computed by a model (projection, proxy, liveness walk)
    DERIVED = "derived"  # computed from measured figures (a ratio, a flag over CIs)
    VERDICT = "verdict"  # a decision (accepted, budget checks)
    PROVENANCE = "provenance"  # how or where a figure was obtained


@dataclass(frozen=True)
class Column:
    """One column: ``name`` may hold a ``{placeholder}`` (a family)."""

    name: str
    unit: str
    kind: Kind
    fmt: str  # format spec for tables ("" = str())
    label: str  # short header for tables
    meaning: str
    table_scale: float = 1.0  # tables show value x this (MiB as KiB: 1024); the CSV never
    in_csv: bool = True  # False: a table's view of a row (the verdict), never a CSV column

    @property
    def family(self) -> str | None:
        match = re.search(r"\{(\w+)\}", self.name)
        return match.group(1) if match else None

    def member(self, value: str) -> str:
        """The column of one family member (``violates_{budget}mb`` -> ``violates_1mb``)."""
        return re.sub(r"\{\w+\}", value, self.name)

    def matches(self, name: str) -> bool:
        if self.family is None:
            return name == self.name
        pattern = re.escape(self.name).replace(re.escape("{" + self.family + "}"), r"(.+)")
        return re.fullmatch(pattern, name) is not None
