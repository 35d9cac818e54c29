"""Small text helpers shared by messages, logs and reports."""

from __future__ import annotations


def percent(fraction: float) -> str:
    """A fraction as a percentage with the digits it needs: 0.02 -> '2%', 0.002 -> '0.2%'."""
    return f"{fraction * 100:.3g}%"
