"""The wizard's one screen: the steps in a sidebar, the chosen step's pane beside it.

The screen owns the run. ``ctrl+r`` takes the pane's form into the spec, saves
release.yaml, and runs the stages up to the pane's step in a thread worker
(``release.tui.runs``); events come back as messages and update the sidebar and the
panes. ``escape`` sets the cancel event: the stage stops at its next checkpoint and
the runner removes its staging folder, so nothing half-written is left.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from pydantic import ValidationError
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Header, OptionList

from release.core.errors import ReleaseError
from release.core.events import (
    Log,
    Progress,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from release.core.redact import redact
from release.core.units import human
from release.report.error_table import explain
from release.tui.panes.base import StepPane
from release.tui.panes.card import CardPane
from release.tui.panes.evaluate import EvalPane
from release.tui.panes.gguf import GGUFPane
from release.tui.panes.intake import IntakePane
from release.tui.panes.merge import MergePane
from release.tui.panes.push import PushPane
from release.tui.runs import RunEnded, RunEvent, stream_release
from release.tui.screens.confirm import ConfirmDialog
from release.tui.session import Session, validation_lines
from release.tui.steps import (
    STAGES,
    STEPS,
    State,
    initial_states,
    resume_step,
    skip_reasons,
    stages_through,
    why_stale,
)
from release.tui.widgets.path_input import shown_path
from release.tui.widgets.sidebar import StepList

PANES: tuple[type[StepPane], ...] = (IntakePane, MergePane, EvalPane, GGUFPane, CardPane, PushPane)


class ReleaseScreen(Screen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "run_step", "Run step"),
        Binding("escape", "cancel_run", "Cancel run", show=False),
        Binding("ctrl+n", "step(1)", "Next step"),
        Binding("ctrl+b", "step(-1)", "Back"),
        Binding("ctrl+s", "save", "Save spec"),
        Binding("ctrl+g", "publish", "Publish via GitHub", show=False),
        # the panes take no focus (Tab goes from field to field), so the screen scrolls
        # the shown one: at 80x24 a step's results sit below its form
        Binding("pagedown", "scroll_pane(1)", "Scroll down", show=False, priority=True),
        Binding("pageup", "scroll_pane(-1)", "Scroll up", show=False, priority=True),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.states: dict[str, State] = initial_states(session.spec)
        self.why = why_stale(session.spec, self.states)
        self.cancel: threading.Event | None = None
        self.stop_following = threading.Event()
        """Set when the screen goes: a publish stops following its workflow run."""

    # -- layout ---------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield StepList(self.states, self.why, id="steps")
            with ContentSwitcher(initial=f"pane-{resume_step(self.states)}", id="panes"):
                for pane in PANES:
                    yield pane(self.session)
        yield Footer()

    def on_mount(self) -> None:
        self._title()
        self.query_one(StepList).select_step(resume_step(self.states))
        self._refresh_panes()
        if self.session.spec is None:  # a new release: the first thing to give is the adapter
            self.pane(IntakePane.facts_type.stage).query_one("#adapter-path").focus()
        else:
            self.query_one(StepList).focus()

    def _title(self) -> None:
        spec = self.session.spec
        self.title = f"{spec.name} {spec.tag}" if spec else "new release"
        self.sub_title = shown_path(self.session.spec_path)

    def pane(self, stage: str) -> StepPane:
        return self.query_one(f"#pane-{stage}", StepPane)

    @property
    def current(self) -> StepPane:
        shown = self.query_one(ContentSwitcher).current
        return self.query_one(f"#{shown}", StepPane)

    @property
    def running(self) -> bool:
        return self.cancel is not None

    def _refresh_panes(self) -> None:
        """Every pane's state line and facts, from the spec and the manifest."""
        reasons = skip_reasons(self.session.spec)
        for step in STEPS:
            pane = self.pane(step.stage)
            why = reasons.get(step.stage) or "; ".join(self.why.get(step.stage, []))
            pane.show_state(self.states[step.stage], why or None)
            pane.show_facts()
            pane.manifest_changed()
        self.pane(PushPane.facts_type.stage).refresh_plan(self.session.spec)  # type: ignore[attr-defined]

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if isinstance(event.option_list, StepList) and event.option.id:
            self.query_one(ContentSwitcher).current = f"pane-{event.option.id}"

    def show_step(self, stage: str) -> None:
        self.query_one(StepList).select_step(stage)

    def action_scroll_pane(self, direction: int) -> None:
        pane = self.current
        if direction > 0:
            pane.scroll_page_down(animate=False)
        else:
            pane.scroll_page_up(animate=False)

    def action_step(self, delta: int) -> None:
        index = STAGES.index(self.current.stage) + delta
        self.show_step(STAGES[max(0, min(index, len(STAGES) - 1))])

    # -- the spec -----------------------------------------------------------------------

    def _apply_form(self, pane: StepPane) -> bool:
        """Take the forms into the spec and save release.yaml; problems show on ``pane``."""
        try:
            if self.session.spec is None and isinstance(pane, IntakePane):
                self.session.start(pane.adapter_dir())
            if self.session.spec is None:
                pane.show_problems(["start with the Intake step: choose the adapter"])
                return False
            changes: dict = {}
            for each in self.query(StepPane):  # every form, so no edit is left behind
                changes.update(each.spec_changes())
            spec = self.session.changed(**changes)
        except ValidationError as exc:
            pane.show_problems(validation_lines(exc))
            return False
        except ReleaseError as exc:
            pane.show_problems([redact(explain(exc)[0])])
            return False
        pane.show_problems([])
        self.session.save(spec)
        self._title()
        return True

    def action_save(self) -> None:
        if self._apply_form(self.current):
            self._reload()
            self.notify(f"saved {self.session.spec_path.name}", title="Spec")

    def _reload(self) -> None:
        """States, facts and the push plan again, after the spec changed."""
        self.states = initial_states(self.session.spec)
        self.why = why_stale(self.session.spec, self.states)
        self.query_one(StepList).show_states(self.states, self.why)
        self._refresh_panes()

    # -- running ------------------------------------------------------------------------

    def action_run_step(self) -> None:
        if self.running:
            self.notify("a run is in progress (escape cancels it)", severity="warning")
            return
        pane = self.current
        if not self._apply_form(pane):
            return
        self._reload()
        if isinstance(pane, PushPane):
            self._confirm_push()
        else:
            only = [pane.stage] if isinstance(pane, IntakePane) else stages_through(pane.stage)
            self.start_run([s for s in only if s != PushPane.facts_type.stage])

    @work
    async def _confirm_push(self) -> None:
        spec = self.session.spec
        assert spec is not None
        if not spec.push.repo_id:
            self.current.show_problems(["name the model repo first"])
            return
        plan = await self.pane(PushPane.facts_type.stage).wait_for_plan()  # type: ignore[attr-defined]
        if plan is None:
            self.current.show_problems(["the dry run found a problem: see above"])
            return
        files = sum(len(repo.files) for repo in plan.repos)
        size = human(sum(repo.total_bytes for repo in plan.repos), "bytes")
        repos = ", ".join(repo.repo_id for repo in plan.repos)
        question = f"Push {files} files ({size}) to {repos} and tag {spec.tag}?"
        # files that no longer match the spec are built again first, never published
        behind = [s.label for s in STEPS[:-1] if self.states[s.stage] in ("stale", "pending")]
        if behind:
            question = f"First redo {', '.join(behind)} (changed with the spec). {question}"
        if await self.app.push_screen_wait(ConfirmDialog(question, yes="Push")):
            self.start_run(stages_through(STAGES[-1]), force=["push"])

    @work
    async def action_publish(self) -> None:
        """Hand the release to the repository's GitHub workflow (``release.publish``):
        what the push step does on a runner instead of here; then follow that run."""
        if self.running:
            self.notify("a run is in progress (escape cancels it)", severity="warning")
            return
        if not self._apply_form(self.current):
            return
        spec = self.session.spec
        assert spec is not None
        question = (
            f"Commit release.yaml and the stored results, tag {spec.tag} and push both to "
            "origin? The repository's GitHub workflow then releases it on a runner "
            "(written if there is none; it needs the secret HF_TOKEN)."
        )
        if await self.app.push_screen_wait(ConfirmDialog(question, yes="Publish")):
            self._publish_worker()

    @work(thread=True, exclusive=True, group="publish", exit_on_error=False)
    def _publish_worker(self) -> None:
        """Publish, then say each change of the workflow run the tag started until it
        ends (or the wizard closes: ``on_unmount`` stops the following, not the run)."""
        from release.publish.follow import follow_published
        from release.publish.tag_push import publish

        spec = self.session.spec
        assert spec is not None

        def say(line: str) -> None:
            self.app.call_from_thread(self.notify, redact(line), title="Publish", timeout=30)

        try:
            follow_published(publish(spec), say, stop=self.stop_following)
        except Exception as exc:  # shown as one line, as every failure in the wizard
            message = redact(explain(exc)[0])
            self.app.call_from_thread(self.notify, message, title="Publish", severity="error")

    def on_unmount(self) -> None:
        self.stop_following.set()

    def start_run(self, only: list[str], force: list[str] | None = None) -> None:
        self.cancel = threading.Event()
        self._run_worker(only, force or [], self.cancel)

    @work(thread=True, exclusive=True, group="release", exit_on_error=False)
    def _run_worker(self, only: list[str], force: list[str], cancel: threading.Event) -> None:
        spec = self.session.spec
        assert spec is not None
        stream_release(spec, self.post_message, cancel, only=only, force=force)

    def action_cancel_run(self) -> None:
        if self.cancel is not None:
            self.cancel.set()
            self.notify("cancelling at the next checkpoint…", title="Cancel")

    def _set_state(self, stage: str, state: State) -> None:
        self.states[stage] = state
        self.query_one(StepList).show_states(self.states, self.why)

    def on_run_event(self, message: RunEvent) -> None:
        event = message.event
        if event.stage not in STAGES:
            return
        run = self.pane(event.stage).run
        match event:
            case StageStarted(stage, title):
                self._set_state(stage, "running")
                run.started(title)
                self.show_step(stage)
            case Progress():
                run.progress(event)
            case Log():
                run.log(event)
            case StageSkipped(stage, reason):
                # skipped as unchanged (done), or because it does not apply to the spec
                applies = stage not in skip_reasons(self.session.spec)
                self._set_state(stage, "done" if applies else "skipped")
                self.pane(stage).show_state(self.states[stage], reason)
            case StageFinished(stage, seconds):
                self._set_state(stage, "done")
                run.finished(seconds)
                self.pane(stage).show_facts()
            case StageFailed(stage, error):
                self._set_state(stage, "failed")
                text = (
                    "cancelled: nothing was kept"
                    if self.cancel and self.cancel.is_set()
                    else (redact(explain(error)[0]))
                )
                run.ended(Text(f"✘ {text}", style="bold red"))

    def on_run_ended(self, message: RunEnded) -> None:
        outcome = message.outcome
        self.cancel = None
        if outcome.cancelled:
            self.states = initial_states(self.session.spec)
            self.why = why_stale(self.session.spec, self.states)
            self.query_one(StepList).show_states(self.states, self.why)
            self.notify("cancelled; finished steps are kept", title="Run")
            return
        if outcome.error is not None:
            message_text = redact(explain(outcome.error)[0])
            failed = next((s for s, st in self.states.items() if st == "failed"), None)
            if failed is None:  # failed before any stage started (spec, lock…)
                self.current.show_problems([message_text])
            self.notify(message_text, title="Run failed", severity="error", timeout=10)
            return
        self._refresh_panes()
