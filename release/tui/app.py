"""The wizard's App: built by ``make_wizard`` from what it opens, so tests start it on
any workspace (posting's app factory)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from release.tui.screens.release import ReleaseScreen
from release.tui.session import Session
from release.tui.steps import STEPS

LIGHT, DARK = "textual-light", "textual-dark"


class ReleaseWizard(App):
    TITLE = "model-release"
    CSS_PATH = "wizard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+t", "toggle_theme", "Theme")]
    # below 100 columns the card's preview goes under its form (wizard.tcss)
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-wide")]

    def __init__(self, session: Session, *, theme: str = DARK) -> None:
        super().__init__()
        self.session = session
        self.theme = theme

    def on_mount(self) -> None:
        self.push_screen(ReleaseScreen(self.session))

    def action_toggle_theme(self) -> None:
        self.theme = LIGHT if self.theme == DARK else DARK

    def watch_theme(self, theme: str) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, ReleaseScreen) and screen.is_mounted:
                screen.query_one("#steps").show_states(screen.states)  # type: ignore[attr-defined]

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not isinstance(screen, ReleaseScreen):
            return
        yield SystemCommand(
            "Run this step",
            "Save the spec and run the current step (ctrl+r)",
            screen.action_run_step,
        )
        yield SystemCommand(
            "Cancel the run",
            "Stop at the next checkpoint; keep finished steps",
            screen.action_cancel_run,
        )
        yield SystemCommand(
            "Save release.yaml", "Write the spec so the CLI can repeat it", screen.action_save
        )
        yield SystemCommand(
            "Toggle light/dark theme",
            "Switch between the light and dark themes",
            self.action_toggle_theme,
        )
        for step in STEPS:
            yield SystemCommand(
                f"Go to {step.label}",
                f"Show the {step.label} step",
                lambda stage=step.stage: screen.show_step(stage),
            )


def make_wizard(target: Path | Sequence[Path] | None = None, *, theme: str = DARK) -> ReleaseWizard:
    """The wizard on a release.yaml, a folder holding one, an adapter folder, or
    several folders to merge (``Session.open``)."""
    return ReleaseWizard(Session.open(target), theme=theme)
