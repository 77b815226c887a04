"""The exceptions model-release raises on purpose.

Every one carries a message meant for a person: what is wrong, where, and what to do.
They also inherit the standard exception a caller would expect (a bad spec is a
``ValueError``, a missing file a ``FileNotFoundError``), so library users can catch
either way. The CLI turns them into one line and an exit code (see ``release.cli``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class Cancelled(Exception):
    """The user asked the run to stop; raised at the next checkpoint of a stage."""


class ReleaseError(Exception):
    """Base class. ``hint`` is the next thing the user should do, if there is one."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(ReleaseError, ValueError):
    """Bad input from the user: a file, a folder or an option. Exit code 2."""

    exit_code = 2


class SpecError(InputError):
    """release.yaml is invalid. ``problems`` holds one line per error, located."""

    def __init__(self, message: str, *, problems: list[str] | None = None, hint=None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []


class MissingInputError(InputError, FileNotFoundError):
    """A file or folder the release needs is not there."""


class StageError(ReleaseError):
    """A stage ran and failed. Exit code 1."""

    def __init__(self, stage: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.stage = stage

    def __str__(self) -> str:
        return f"{self.stage}: {super().__str__()}"


class WorkError(StageError):
    """Work done for a stage failed: the Hub refused, an export broke. The domain code that
    raises it does not know which stage runs it; ``named_stage`` (the runner, or the
    command that ran the work) puts the stage's name on it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__("", message, hint=hint)

    def __str__(self) -> str:
        return super().__str__() if self.stage else ReleaseError.__str__(self)


class Refused(WorkError):
    """The work ran and its verdict is no (the regression gate). ``facts`` is what it
    measured on the way (a stage's facts as JSON): the runner files them in the manifest
    under ``refused``, so a later release's history can say why this one was held back."""

    def __init__(self, message: str, *, facts: dict[str, Any], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.facts = facts


@contextlib.contextmanager
def named_stage(name: str) -> Iterator[None]:
    """Name ``name`` on a ``WorkError`` raised inside, so its message says which stage."""
    try:
        yield
    except WorkError as error:
        error.stage = error.stage or name
        raise


class NotEnoughResources(StageError):
    """A stage would not fit: its outputs on the disk or its peak in memory. Exit code 1,
    as for a disk that fills up midway: the same spec succeeds on a machine with room.

    ``resource`` is "disk" or "memory"; ``needed`` and ``available`` are bytes; ``where``
    names the filesystem (the workspace's nearest folder) or the memory limit.
    """

    def __init__(
        self,
        stage: str,
        message: str,
        *,
        hint: str | None = None,
        resource: str,
        needed: int,
        available: int,
        where: str,
    ) -> None:
        super().__init__(stage, message, hint=hint)
        self.resource, self.needed, self.available, self.where = resource, needed, available, where
