"""What every step pane has: a title, a one-line purpose, its form, its stage's run."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from release.core.facts import StageFacts
from release.tui.session import Session
from release.tui.steps import State
from release.tui.widgets.stage_run import StageRun


class StepPane(VerticalScroll):
    facts_type: ClassVar[type[StageFacts]]
    """The record of what this step's stage measured; its ``stage`` names the step."""
    heading: ClassVar[str]
    purpose: ClassVar[str]
    run_label: ClassVar[str] = "run this step"
    can_focus = False

    @property
    def stage(self) -> str:
        return self.facts_type.stage

    def __init__(self, session: Session) -> None:
        super().__init__(id=f"pane-{self.stage}", classes="pane")
        self.session = session

    def compose(self) -> ComposeResult:
        yield Static(self.heading, classes="heading")
        yield Static(self.purpose, classes="purpose")
        yield from self.compose_form()
        yield Static("", classes="problems")
        yield StageRun()
        yield Static("", classes="facts")

    def compose_form(self) -> ComposeResult:
        yield from ()

    @property
    def run(self) -> StageRun:
        return self.query_one(StageRun)

    def spec_changes(self) -> dict[str, Any]:
        """What the form changes in the spec (sections or top-level fields)."""
        return {}

    def show_problems(self, lines: list[str]) -> None:
        problems = self.query_one(".problems", Static)
        problems.update(Text("\n".join(lines), style="red") if lines else "")
        problems.display = bool(lines)
        if lines:  # below a long form or plan they would go unseen
            self.call_after_refresh(problems.scroll_visible, animate=False)

    def show_state(self, state: State, reason: str | None = None) -> None:
        """The state line when the stage is not running (on opening, after a run);
        ``reason``: why it is skipped, or what changed since its run."""
        looks = {
            "done": Text("✔ done", style="bold green"),
            "stale": Text(
                f"◐ changed since its last run{f' ({reason})' if reason else ''}"
                " — ctrl+r runs it again",
                style="bold yellow",
            ),
            "skipped": Text(f"– skipped: {reason}", style="dim"),
            "pending": Text(f"○ not run yet — ctrl+r to {self.run_label}", style="dim"),
        }
        if state in looks:
            self.run.ended(looks[state])

    def manifest_changed(self) -> None:
        """The manifest changed (a stage finished, the wizard opened): update what
        depends on other stages' facts."""

    def show_facts(self) -> None:
        """Render the stage's recorded facts (nothing when it has not run)."""
        facts = self.session.facts(self.facts_type)
        shown = self.render_facts(facts, self.session.measured(self.stage)) if facts else ""
        self.query_one(".facts", Static).update(shown)

    def render_facts(self, facts: Any, measured: dict[str, Any]):
        """``facts``: this step's ``facts_type``; ``measured``: what the run measured of
        the machine (peak memory, free disk)."""
        return ""
