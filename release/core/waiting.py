"""Wait for one blocking call while the stage keeps saying it is alive.

Some of a stage's work is one call that cannot report its own steps: a llama.cpp child
loading and probing an 8 GB file, hashing it, the quantizer, a reference computed in
another process, one forward pass of a 512-token chunk through a 4B model on a CPU
(40 s), PEFT's merge of a whole model. ``ticking`` runs such a call on a thread of its
own and yields a tick every ``WAIT_REPORT_S``; ``waiting`` makes each tick a progress
event (seconds waited so far), so no front end goes silent: the CLI's plain line, the
wizard's bar and ``--json`` all move.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from release.core.events import Event, Reporter

Result = TypeVar("Result")
Tick = TypeVar("Tick")

WAIT_REPORT_S = 2.0
"""Seconds between two ticks while a call runs."""


def ticking(
    call: Callable[[], Result], tick: Callable[[float], Tick]
) -> Generator[Tick, None, Result]:
    """Run ``call`` on a thread, yielding ``tick(seconds waited)`` every
    ``WAIT_REPORT_S`` until it returns; returns what it returns, raises what it raises."""
    start = time.monotonic()
    pool = ThreadPoolExecutor(1, thread_name_prefix="waiting")
    try:
        future = pool.submit(call)
        while True:
            try:
                return future.result(timeout=WAIT_REPORT_S)
            except TimeoutError:
                yield tick(time.monotonic() - start)
    finally:
        # not waiting for a call the caller gave up on (a cancel, a failure after it):
        # it ends when what it waits for does (the caller closes its child process)
        pool.shutdown(wait=False)


def waiting(
    report: Reporter, message: str, call: Callable[[], Result]
) -> Generator[Event, None, Result]:
    """``ticking`` with ``report.progress(seconds, None, "s", message)`` as its ticks. A
    cancel (the reporter's check) is honoured between two of them."""

    def tick(seconds: float) -> Event:
        report.check_cancelled()
        return report.progress(round(seconds), None, "s", message)

    return (yield from ticking(call, tick))
