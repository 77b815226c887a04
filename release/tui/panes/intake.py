"""Intake: choose the adapter and the base, then prove the adapter fits the base.

The checks run as you type (folders exist, hold what they should); the real intake
(``run_release(spec, only=["adapter"])``) reads only configs and tensor headers, so it
shows the adapter's facts and any blocking problem before anything heavy runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label

from cards.facts import count
from cards.schema import is_repo_id
from release.checkpoint.adapter import adapter_label
from release.core.errors import ReleaseError
from release.merge.facts import AdapterFacts
from release.spec.starter import adapter_defaults
from release.tui.panes.base import StepPane
from release.tui.widgets.facts import facts_table
from release.tui.widgets.path_input import (
    FolderCheck,
    FolderSuggester,
    RuleCheck,
    shown_path,
)


def is_owned_repo_id(value: str) -> bool:
    return is_repo_id(value, owner_required=True)


def _typed_path(value: str) -> Path:
    """A path typed in a field, absolute and normalised (no '..')."""
    return Path(os.path.abspath(os.path.expanduser(value)))


def _field(label: str, widget: Input) -> Vertical:
    widget.compact = True
    return Vertical(Label(label, classes="field-label"), widget, classes="field")


class IntakePane(StepPane):
    facts_type = AdapterFacts
    heading = "Intake"
    purpose = "Which adapter to release, on which base. Intake checks that they fit."
    run_label = "check the adapter against the base"

    def compose_form(self) -> ComposeResult:
        spec = self.session.spec
        adapter = spec.adapter.path if spec and spec.adapter else self.session.adapter_hint
        folder = FolderSuggester()
        if spec and spec.adapter is None and spec.merge.recipe is not None:
            yield _field(  # several inputs: the recipe names them; edited in release.yaml
                "Models merged (merge.recipe in release.yaml)",
                Input(", ".join(spec.merge.recipe.input_names), id="recipe-inputs", disabled=True),
            )
        elif (
            spec and spec.adapter and spec.adapter.repo_id
        ):  # kept as release.yaml says; edited there
            yield _field(
                "Adapter on the Hub (adapter.repo_id in release.yaml)",
                Input(adapter_label(spec.adapter), id="adapter-repo", disabled=True),
            )
        else:
            yield _field(
                "Adapter folder (adapter_config.json)",
                Input(
                    shown_path(adapter),
                    placeholder="path/to/adapter",
                    id="adapter-path",
                    suggester=folder,
                    validators=[FolderCheck("adapter_config.json", "a PEFT adapter")],
                ),
            )
        with Horizontal(classes="row"):
            yield _field(
                "Base model on the Hub",
                Input(
                    (spec.base.repo_id or "") if spec else "",
                    placeholder="owner/name",
                    id="base-repo",
                    validators=[
                        RuleCheck(
                            is_owned_repo_id, lambda v: f"{v}: write owner/name", optional=True
                        )
                    ],
                ),
            )
            yield _field(
                "Local copy (optional)",
                Input(
                    shown_path(spec.base.path) if spec else "",
                    placeholder="path/to/base",
                    id="base-path",
                    suggester=folder,
                    validators=[FolderCheck("config.json", "a model folder", optional=True)],
                ),
            )
        with Horizontal(classes="row"):
            yield _field("Release name", Input(spec.name if spec else "", id="name"))
            yield _field("Version", Input(spec.version if spec else "0.1.0", id="version"))

    def on_mount(self) -> None:
        self.call_after_refresh(self._check_all)

    def on_input_changed(self, event: Input.Changed) -> None:
        checked = event.validation_result
        if event.input.id == "adapter-path" and checked and checked.is_valid:
            self._fill_from_adapter(_typed_path(event.value))
        self._check_all()

    def _fill_from_adapter(self, adapter_dir: Path) -> None:
        """Empty fields take what the adapter's config suggests (as `init` would write)."""
        try:
            defaults = adapter_defaults(adapter_dir)
        except ReleaseError:
            return  # the field's own check says what is wrong
        for field, value in (
            ("base-repo", defaults.base_repo_id),
            ("base-path", defaults.base_path),
            ("name", defaults.name),
        ):
            widget = self.query_one(f"#{field}", Input)
            if value and not widget.value.strip():
                widget.value = value

    def _check_all(self) -> None:
        lines = []
        for field in self.query(Input):
            result = field.validate(field.value)
            if result is not None and not result.is_valid:
                lines += result.failure_descriptions
        if not self.query_one("#base-repo", Input).value and not self._value("base-path"):
            lines.append("give the base's Hub id, a local copy, or both")
        self.show_problems(lines)

    def _value(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value.strip()

    def _typed_adapter(self) -> str:
        """The adapter folder typed, "" where the form has no such field (a recipe's)."""
        fields = self.query("#adapter-path").results(Input)
        return next((field.value.strip() for field in fields), "")

    def _path(self, field: str, current: Path | None) -> Path | None:
        """The field's path; the spec's own while the field still shows it, so a path
        written with '..' in release.yaml is not taken for a changed input."""
        value = self._value(field)
        if current is not None and value == shown_path(current):
            return current
        return _typed_path(value) if value else None

    def adapter_dir(self) -> Path:
        spec = self.session.spec
        path = self._path("adapter-path", spec.adapter.path if spec and spec.adapter else None)
        return path or _typed_path(".")

    def spec_changes(self) -> dict[str, Any]:
        spec = self.session.spec
        from_hub = (
            spec is not None and spec.adapter is not None and spec.adapter.repo_id is not None
        )
        # a recipe's release names no adapter: no field, or an empty one, keeps it so
        recipe_only = spec is not None and spec.adapter is None and not self._typed_adapter()
        return {
            "adapter": {} if from_hub or recipe_only else {"path": self.adapter_dir()},
            "base": {
                "repo_id": self._value("base-repo") or None,
                "path": self._path("base-path", spec.base.path if spec else None),
            },
            "name": self._value("name"),
            "version": self._value("version"),
        }

    def render_facts(self, facts: AdapterFacts, measured: dict[str, Any]):
        targets = ", ".join(facts.target_modules or []) or "—"
        kind = facts.peft_type or "?"
        if facts.use_dora:
            kind += " (DoRA)"
        elif facts.use_rslora:
            kind += " (rsLoRA)"
        adapter = [
            ("adapter", f"{kind}, r={facts.r}, alpha={facts.lora_alpha}"),
            ("targets", targets),
            ("trainable", count(facts.trainable_parameters or 0)),
            ("edits", f"{facts.edited_parameters or 0} base tensors"),
        ]
        if facts.peft_type is None:  # a merge recipe's release: the base alone was checked
            adapter = [("adapter", "none: merge.recipe names the models")]
        return facts_table(
            [
                *adapter,
                ("base", str(facts.base_id or "?")),
                (
                    "base weights",
                    f"{count(facts.base_parameters or 0)} parameters, "
                    f"{facts.base_dtype or '?'}, {facts.base_tensors or 0} tensors",
                ),
                ("fingerprint", (facts.base_fingerprint or "—")[:16]),
            ],
            title="What intake found",
        )
