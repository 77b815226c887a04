"""Re-yield a worker generator's items as stage events, keeping its return value."""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TypeVar

Item = TypeVar("Item")
Out = TypeVar("Out")
Result = TypeVar("Result")


def relay(
    work: Generator[Item, None, Result], convert: Callable[[Item], Out]
) -> Generator[Out, None, Result]:
    """``yield from`` over ``work`` with each item converted; returns what ``work`` returns."""
    while True:
        try:
            item = next(work)
        except StopIteration as stop:
            return stop.value
        yield convert(item)
