"""Helpers for driving the wizard with Textual's pilot."""

from __future__ import annotations

import io

from rich.console import Console
from textual.widgets import ContentSwitcher, Static

SIZE = (100, 30)


async def settle(app, pilot) -> None:
    """Let the run worker finish and its last messages arrive."""
    await app.workers.wait_for_complete()
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def text_of(app, selector: str) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(app.screen.query_one(selector, Static).content)
    return console.export_text()


def shown_step(app) -> str:
    return app.screen.query_one(ContentSwitcher).current.removeprefix("pane-")
