"""Wait for one blocking call while the stage keeps saying it is alive.

Some of a stage's work is one call that cannot report its own steps: a llama.cpp child
loading and probing an 8 GB file, hashing it, the quantizer, a reference computed in
another process. ``waiting`` runs such a call on a thread of its own and yields a
progress event (seconds waited so far) every ``WAIT_REPORT_S``, so no front end goes
silent: the CLI's plain line, the wizard's bar and ``--json`` all move.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from release.core.events import Event, Reporter

Result = TypeVar("Result")

WAIT_REPORT_S = 2.0
"""Seconds between two progress events while a call runs."""


def waiting(
    report: Reporter, message: str, call: Callable[[], Result]
) -> Generator[Event, None, Result]:
    """Run ``call`` on a thread, yielding ``report.progress(seconds, None, "s", message)``
    until it returns; returns what it returns, raises what it raises. A cancel (the
    reporter's check) is honoured between two events."""
    start = time.monotonic()
    pool = ThreadPoolExecutor(1, thread_name_prefix="waiting")
    try:
        future = pool.submit(call)
        while True:
            try:
                return future.result(timeout=WAIT_REPORT_S)
            except TimeoutError:
                report.check_cancelled()
                yield report.progress(round(time.monotonic() - start), None, "s", message)
    finally:
        # not waiting for a call the caller gave up on (a cancel, a failure after it):
        # it ends when what it waits for does (the caller closes its child process)
        pool.shutdown(wait=False)
