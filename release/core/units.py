"""Numbers as people read them: one humaniser for the console, the push log and its plan."""

from __future__ import annotations


def human(value: float, unit: str) -> str:
    """``value`` of ``unit`` for a person: bytes as B, KB, MB or GB (powers of 1000, one
    decimal above B); any other unit as the plain number."""
    if unit != "bytes":
        return f"{value:g}"
    for suffix in ("B", "KB", "MB", "GB"):
        if value < 1000 or suffix == "GB":
            return f"{value:.0f} {suffix}" if suffix == "B" else f"{value:.1f} {suffix}"
        value /= 1000
    raise AssertionError("unreachable")
