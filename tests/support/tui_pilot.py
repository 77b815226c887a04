"""Helpers for driving the wizard with Textual's pilot.

A test never waits a fixed time: it waits for the wizard's own state (a run over, its
workers finished, a dialog up, a widget showing something), polling while the app runs,
and fails after a generous timeout with a message naming what it waited for. So the
tests pass on a slow or busy machine as on a fast one.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

from rich.console import Console
from textual.widgets import ContentSwitcher, OptionList, Static
from textual.worker import WorkerState

from release.tui.screens.confirm import ConfirmDialog
from release.tui.screens.release import ReleaseScreen

SIZE = (100, 30)
TIMEOUT = 600.0  # seconds: a SmolLM2 stage on a loaded 2-core machine, with room to spare
_POLL = 0.05


async def wait_until(
    pilot, condition: Callable[[], object], what: str, timeout: float = TIMEOUT
) -> None:
    """Let the app run until ``condition()`` is true, then let its messages arrive."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}; still {busy(pilot.app)}")
        await pilot.pause(_POLL)
    await pilot.pause()


def release_screen(app) -> ReleaseScreen:
    """The wizard's screen, also while a dialog is over it."""
    screens = [s for s in app.screen_stack if isinstance(s, ReleaseScreen)]
    assert screens, "the wizard's screen is gone: did the app exit?"
    return screens[0]


def busy(app) -> list[str]:
    """What the wizard is still doing: its run, and each worker not finished."""
    at_work = [
        worker.name or worker.description.partition("(")[0]
        for worker in app.workers
        if worker.state in (WorkerState.PENDING, WorkerState.RUNNING)
    ]
    running = any(isinstance(s, ReleaseScreen) and s.running for s in app.screen_stack)
    return (["the run"] if running else []) + at_work


async def opened(app, pilot) -> ReleaseScreen:
    """Wait for the wizard's screen to be up (its opening workers may still run)."""
    await wait_until(
        pilot,
        lambda: isinstance(app.screen, ReleaseScreen) and app.screen.is_mounted,
        "the wizard's screen to open",
    )
    return app.screen


async def show(app, pilot, stage: str) -> None:
    """Choose a step in the sidebar and wait for its pane to be the one shown."""
    release_screen(app).show_step(stage)
    await wait_until(pilot, lambda: shown_step(app) == stage, f"the {stage} step to show")


async def settle(app, pilot) -> None:
    """Wait for the run to end and every worker to finish (the push plan's dry run, the
    GGUF sizes), and for their last messages to arrive."""
    await wait_until(pilot, lambda: not busy(app), "the run and the wizard's workers to finish")


async def confirmation(app, pilot) -> str:
    """Wait for the push's yes/no question (after the dry run it reads) and return it."""
    await wait_until(
        pilot, lambda: isinstance(app.screen, ConfirmDialog), "the push confirmation dialog"
    )
    return str(app.screen.query_one("#question", Static).content)


def lint_shows(app, word: str) -> bool:
    """The card step's lint list names ``word`` (once the edit's debounce has run)."""
    lint = release_screen(app).query_one("#card-lint", OptionList)
    return any(word in str(lint.get_option_at_index(i).prompt) for i in range(lint.option_count))


def text_of(app, selector: str) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(app.screen.query_one(selector, Static).content)
    return console.export_text()


def shown_step(app) -> str:
    return app.screen.query_one(ContentSwitcher).current.removeprefix("pane-")
