"""The steps of the release as a sidebar, each with its state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from release.tui.steps import STEPS, State

# icon, theme colour (a Theme attribute) or None for dim text
_LOOK: dict[State, tuple[str, str | None]] = {
    "pending": ("○", None),
    "running": ("◉", "accent"),
    "done": ("✔", "success"),
    "stale": ("◐", "warning"),
    "failed": ("✘", "error"),
    "skipped": ("–", None),
}

# what the sidebar says for a state whose name is a programmer's word
_WORD: dict[State, str] = {"stale": "changed"}


_WIDTH = 19
"""What fits of a reason under a step (the list is 24 columns, 3 of them indent)."""


def _short(why: list[str]) -> str:
    """The first of a stage's reasons, as the sidebar has room for: what changed, not its
    values (``setting card.summary``), and how many more there are."""
    first = why[0].split(": ", 1)[0]
    more = f" +{len(why) - 1}" if len(why) > 1 else ""
    room = _WIDTH - len(more)
    return (first if len(first) <= room else first[: room - 1] + "…") + more


class StepList(OptionList):
    """One option per step; highlighting a step shows it (the screen listens)."""

    DEFAULT_CSS = """
    StepList { width: 24; height: 1fr; padding: 1 0; }
    """

    def __init__(
        self, states: dict[str, State], why: dict[str, list[str]] | None = None, **kwargs
    ) -> None:
        why = why or {}
        super().__init__(
            *[Option(self._label(s.stage, states, why), id=s.stage) for s in STEPS], **kwargs
        )

    def _label(self, stage: str, states: dict[str, State], why: dict[str, list[str]]) -> Text:
        step = next(s for s in STEPS if s.stage == stage)
        state = states.get(stage, "pending")
        icon, colour = _LOOK[state]
        style = f"bold {getattr(self.app.current_theme, colour)}" if colour else "dim"
        label = Text.assemble(
            (f" {icon} ", style),
            (f"{step.label:<7}", "bold" if state == "running" else ""),
            (_WORD.get(state, state), "dim italic" if colour is None else style),
        )
        if state == "stale" and why.get(stage):  # what changed, under it (the pane says all)
            label.append(f"\n   {_short(why[stage])}", "dim italic")
        return label

    def show_states(
        self, states: dict[str, State], why: dict[str, list[str]] | None = None
    ) -> None:
        for step in STEPS:
            self.replace_option_prompt(step.stage, self._label(step.stage, states, why or {}))

    def select_step(self, stage: str) -> None:
        self.highlighted = self.get_option_index(stage)
