"""A blocking call waited for with progress events: they come while it runs, its result
or its error comes back, and a cancel stops the wait."""

from __future__ import annotations

import threading

import pytest

from release.core import waiting as waiting_module
from release.core.errors import Cancelled
from release.core.relay import finish
from release.core.waiting import waiting
from tests.support.reporters import SilentReporter


class CountingReporter(SilentReporter):
    def __init__(self, cancel_after: int | None = None) -> None:
        super().__init__("gguf")
        self.events: list[tuple[float, float | None, str, str]] = []
        self.cancel_after = cancel_after

    def progress(self, done, total, unit, message=""):
        self.events.append((done, total, unit, message))
        return message

    def check_cancelled(self) -> None:
        if self.cancel_after is not None and len(self.events) >= self.cancel_after:
            raise Cancelled()


@pytest.fixture(autouse=True)
def quick_ticks(monkeypatch):
    monkeypatch.setattr(waiting_module, "WAIT_REPORT_S", 0.01)


def test_events_come_while_the_call_blocks_then_its_result():
    released = threading.Event()
    report = CountingReporter()
    work = waiting(report, "checking model-Q8_0.gguf", lambda: released.wait() and 42)

    seen = [next(work), next(work)]  # the call is still blocked: these are ticks
    released.set()

    assert finish(work) == 42
    assert seen == ["checking model-Q8_0.gguf"] * 2
    assert all(total is None and unit == "s" for _, total, unit, _ in report.events)
    assert [done for done, *_ in report.events] == sorted(done for done, *_ in report.events)


def test_the_calls_error_is_raised_to_the_waiter():
    def fails():
        raise ValueError("llama.cpp said no")

    with pytest.raises(ValueError, match="said no"):
        finish(waiting(CountingReporter(), "checking", fails))


def test_a_cancel_ends_the_wait_while_the_call_still_runs():
    released = threading.Event()
    report = CountingReporter(cancel_after=2)

    with pytest.raises(Cancelled):
        finish(waiting(report, "checking", released.wait))

    assert len(report.events) == 2
    released.set()
