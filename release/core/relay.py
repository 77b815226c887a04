"""Re-yield a worker generator's items as stage events, keeping its return value; or run
one to its end where nobody shows its steps (a child process, a bench)."""

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


def finish(work: Generator[object, None, Result]) -> Result:
    """Run ``work`` to its end, its items unseen; returns what it returns."""
    while True:
        try:
            next(work)
        except StopIteration as stop:
            return stop.value
