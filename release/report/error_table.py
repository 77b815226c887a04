"""One table from exception types to a one-line message and an exit code.

Exit codes: 2 for bad input (the user can fix a file or an option), 1 for a stage or
service that failed, 130 for an interrupted run. The first matching row wins, so rows
for subclasses come before their parents (as in huggingface_hub's cli/_errors.py).
A traceback is shown only with --debug.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from release.core.errors import Cancelled, ReleaseError, SpecError

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class ErrorRow:
    types: tuple[type[BaseException], ...]
    exit_code: int | Callable[[BaseException], int]
    message: Callable[[BaseException], str]


def _spec_message(exc: BaseException) -> str:
    assert isinstance(exc, SpecError)
    return "\n".join([f"error: {exc}", *exc.problems])


def _os_message(exc: BaseException) -> str:
    assert isinstance(exc, OSError)
    where = f"{exc.filename}: " if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        # a copy (shutil.copyfile) names its source first: the disk that is full holds
        # the destination, filename2
        where = f"{exc.filename2}: " if exc.filename2 else where
        return f"error: {where}no space left on the device (free some space and run again)"
    return f"error: {where}{exc.strerror or exc}"


def _os_exit(exc: BaseException) -> int:
    assert isinstance(exc, OSError)
    bad_input = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM}
    return EXIT_BAD_INPUT if exc.errno in bad_input else EXIT_FAILED


def _rows() -> list[ErrorRow]:
    from cards.errors import CardError

    return [
        ErrorRow((SpecError,), EXIT_BAD_INPUT, _spec_message),
        ErrorRow((ReleaseError,), lambda e: e.exit_code, lambda e: f"error: {e}"),  # type: ignore[attr-defined]
        ErrorRow((CardError,), EXIT_BAD_INPUT, lambda e: f"error: {e}"),
        ErrorRow(
            (Cancelled, KeyboardInterrupt),
            EXIT_INTERRUPTED,
            lambda e: "interrupted: finished stages are kept; run again to resume",
        ),
        ErrorRow((OSError,), _os_exit, _os_message),
    ]


def explain(exc: BaseException) -> tuple[str, int]:
    """The message to print and the exit code for ``exc``."""
    for row in _rows():
        if isinstance(exc, row.types):
            code = row.exit_code(exc) if callable(row.exit_code) else row.exit_code
            return row.message(exc), code
    name = type(exc).__name__
    return (
        f"error: unexpected {name}: {exc} (this is a bug in model-release; rerun with --debug "
        "for the traceback and report it)",
        EXIT_FAILED,
    )
