"""Runner events into the wizard: a thread loops over ``run_release`` and posts them.

As in toolong, the pipeline knows nothing of Textual and takes a plain
``threading.Event`` to cancel; the loop here runs in a thread worker and posts one
message per event. Bursts of progress merge: at most one ``Progress`` per stage every
``interval`` seconds reaches the UI, the latest one, and it is always flushed before
the next event of another kind, so the bar never lags behind a finished stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual.message import Message

from release.core.errors import Cancelled
from release.core.events import Event, Progress
from release.spec.schema import ReleaseSpec


class RunEvent(Message):
    """One event of the runner, in the UI thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class RunEnded(Message):
    """The run is over: finished (error None), failed or cancelled."""

    def __init__(self, outcome: RunOutcome) -> None:
        super().__init__()
        self.outcome = outcome


@dataclass(frozen=True)
class RunOutcome:
    stages: tuple[str, ...]
    error: BaseException | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled


def stream_release(
    spec: ReleaseSpec,
    post: Callable[[Message], object],
    cancel: threading.Event,
    *,
    only: Sequence[str],
    force: Sequence[str] = (),
    interval: float = 0.05,
) -> RunOutcome:
    """Run the ``only`` stages of ``spec``, posting every event; never raises."""
    from release.runner import run_release

    pending: Progress | None = None
    last = 0.0
    try:
        for event in run_release(spec, only=only, force=force, cancel=cancel):
            if isinstance(event, Progress):
                now = time.monotonic()
                if now - last < interval and event.done != event.total:
                    pending = event
                    continue
                last, pending = now, None
            elif pending is not None:
                post(RunEvent(pending))
                pending = None
            post(RunEvent(event))
    except Cancelled:
        outcome = RunOutcome(tuple(only), cancelled=True)
    except BaseException as exc:  # shown in the wizard, never raised in a thread
        outcome = RunOutcome(tuple(only), error=exc, cancelled=cancel.is_set())
    else:
        outcome = RunOutcome(tuple(only))
    post(RunEnded(outcome))
    return outcome
