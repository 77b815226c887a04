"""Card: the metadata and prose of the model card beside a live preview and its lint.

Every edit re-renders the card as the card stage would (``release.tui.card_preview``),
a moment after typing stops; each problem names its field, and choosing it in the list
moves the cursor there. A table wider than the preview is shown as a list. ctrl+s saves
the form into release.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Label, Markdown, OptionList, Select, TextArea
from textual.widgets.option_list import Option

from cards.frontmatter import split
from cards.vocab import licenses
from release.report.card_facts import CardFacts
from release.tui.card_preview import preview_model_card, tables_as_lists
from release.tui.panes.base import StepPane

_LISTS = ("language", "tags", "datasets")
_PROSE = ("summary", "limitations")


@dataclass(frozen=True)
class LintLine:
    """One problem as the lint list shows it; ``field`` is the form field it concerns."""

    field: str | None
    text: str
    severity: str


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class CardPane(StepPane):
    facts_type = CardFacts
    heading = "Model card"
    purpose = "What the Hub shows. Numbers come from the manifest; the words are yours."
    run_label = "write the cards"

    _timer: Timer | None = None
    _body: str | None = None
    """The card's body last rendered, shown again at the preview's new width on a resize."""

    def compose_form(self) -> ComposeResult:
        card = self.session.spec.card if self.session.spec else None
        with Horizontal(id="card-editor"):
            # the form scrolls to the focused field; Tab goes straight to the first one
            with VerticalScroll(id="card-form", can_focus=False):
                yield Label("License", classes="field-label")
                yield Select(
                    [(name, name) for name in sorted(licenses())],
                    value=card.license if card else "apache-2.0",
                    allow_blank=False,
                    id="card-license",
                    compact=True,
                )
                hints = ("en, fr (comma-separated)", "lora, chat", "owner/dataset, …")
                for name, hint in zip(_LISTS, hints, strict=True):
                    yield Label(name.capitalize(), classes="field-label")
                    yield Input(
                        ", ".join(getattr(card, name)) if card else "",
                        placeholder=hint,
                        id=f"card-{name}",
                        compact=True,
                    )
                for name in _PROSE:
                    yield Label(name.capitalize(), classes="field-label")
                    yield TextArea(
                        getattr(card, name) if card else "",
                        id=f"card-{name}",
                        soft_wrap=True,
                        compact=True,
                    )
            with Vertical(id="card-side"):
                yield OptionList(id="card-lint")
                with VerticalScroll(id="card-preview"):
                    yield Markdown("")

    def on_mount(self) -> None:
        self.call_after_refresh(self.update_preview)

    def spec_changes(self) -> dict[str, Any]:
        card: dict[str, Any] = {"license": self.query_one("#card-license", Select).value}
        for name in _LISTS:
            card[name] = _items(self.query_one(f"#card-{name}", Input).value)
        for name in _PROSE:
            card[name] = self.query_one(f"#card-{name}", TextArea).text
        return {"card": card}

    def on_input_changed(self) -> None:
        self._later()

    def on_text_area_changed(self) -> None:
        self._later()

    def on_select_changed(self) -> None:
        self._later()

    def _later(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(0.3, self.update_preview)

    def update_preview(self) -> None:
        from pydantic import ValidationError

        from release.tui.session import validation_lines

        if self.session.spec is None:
            return
        try:
            spec = self.session.changed(**self.spec_changes())
        except ValidationError as exc:
            self._show_lint([LintLine(None, line, "error") for line in validation_lines(exc)])
            return
        preview = preview_model_card(spec, self.session.manifest())
        self._show_lint(
            [
                LintLine(
                    p.field, f"{p.field or f'line {p.line}'}: {p.severity}: {p.message}", p.severity
                )
                for p in preview.problems
            ]
        )
        if preview.text is not None:
            front = split(preview.text)
            self._body = front.body if front else preview.text
            self._show_body()

    def on_resize(self) -> None:
        self._show_body()

    def _show_body(self) -> None:
        """The body in the preview, its tables as lists where they would not fit."""
        if self._body is None:
            return
        markdown = self.query_one(Markdown)
        width = markdown.content_region.width or self.query_one("#card-preview").size.width
        self.query_one(Markdown).update(tables_as_lists(self._body, width))

    def _show_lint(self, problems: list[LintLine]) -> None:
        lint = self.query_one("#card-lint", OptionList)
        lint.clear_options()
        if not problems:
            lint.add_option(Option(Text("✔ the card passes its checks", style="green"), id="ok"))
        for index, problem in enumerate(problems):
            style = "red" if problem.severity == "error" else "yellow"
            option_id = f"{index}:{problem.field or ''}"
            lint.add_option(Option(Text(problem.text, style=style), id=option_id))
        lint.styles.height = min(len(problems), 4) + 2 if problems else 3

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list.id != "card-lint" or not event.option.id:
            return
        event.stop()
        field = event.option.id.partition(":")[2]
        target = self.query(f"#card-{field}") if field else None
        if target:
            widget: Widget = target.first()
            widget.focus()
