"""Push: where to, the dry-run plan (every file, size and sha256), then the push.

The plan is ``release.stages.push.dry_run``: the same checks as the push (gate, card
lint, hashes) with nothing sent, then what the Hub already holds of each repo
(``release.hub.remote``). It is built in a thread worker, since it rereads the files to
check their hashes and asks the Hub.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Checkbox, Input, Static
from textual.worker import Worker, get_current_worker

from release.hub.facts import PushFacts
from release.hub.plan import PushPlan, render_plan
from release.report.error_table import explain
from release.spec.schema import ReleaseSpec
from release.tui.panes.base import StepPane
from release.tui.panes.intake import _field, is_owned_repo_id
from release.tui.widgets.facts import facts_table
from release.tui.widgets.path_input import RuleCheck


class PushPane(StepPane):
    facts_type = PushFacts
    heading = "Push to the Hub"
    purpose = "One commit per repo, then the version tag. Check the plan, then push."
    run_label = "push (after a confirmation)"

    plan: PushPlan | None = None
    _plan_worker: Worker | None = None

    def compose_form(self) -> ComposeResult:
        push = self.session.spec.push if self.session.spec else None
        check = RuleCheck(is_owned_repo_id, lambda v: f"{v}: write owner/name", optional=True)
        with Horizontal(classes="row"):
            yield _field(
                "Model repo",
                Input(
                    (push and push.repo_id) or "",
                    placeholder="owner/name",
                    id="repo-id",
                    validators=[check],
                ),
            )
            yield _field(
                "GGUF repo (optional)",
                Input(
                    (push and push.gguf_repo_id) or "",
                    placeholder="owner/name-GGUF",
                    id="gguf-repo-id",
                    validators=[check],
                ),
            )
        yield Checkbox("private repos", bool(push and push.private), id="private", compact=True)
        yield Static("", id="plan")

    def _value(self, field: str) -> str | None:
        return self.query_one(f"#{field}", Input).value.strip() or None

    def spec_changes(self) -> dict[str, Any]:
        return {
            "push": {
                "repo_id": self._value("repo-id"),
                "gguf_repo_id": self._value("gguf-repo-id"),
                "private": self.query_one("#private", Checkbox).value,
            }
        }

    def refresh_plan(self, spec: ReleaseSpec | None) -> None:
        self.plan = None
        if spec is None or not spec.push.repo_id:
            self.query_one("#plan", Static).update(
                Text(
                    "Name the model repo, then ctrl+s: the dry run shows what a push would send.",
                    style="dim",
                )
            )
            return
        self.query_one("#plan", Static).update(Text("checking what a push would send…", "dim"))
        self._plan_worker = self._build_plan(spec)

    async def wait_for_plan(self) -> PushPlan | None:
        """The plan of the current spec, once the dry run is over (None if it failed)."""
        if self._plan_worker is not None:
            await self._plan_worker.wait()
        return self.plan

    @work(thread=True, exclusive=True, group="push-plan")
    def _build_plan(self, spec: ReleaseSpec) -> None:
        from release.hub.remote import hub_lines
        from release.stages.push import dry_run

        worker = get_current_worker()
        try:
            plan, warnings = dry_run(spec)
        except Exception as exc:  # any failure is shown as the plan's problem
            message, _ = explain(exc)
            self.app.call_from_thread(self._show_plan, worker, None, Text(message, style="red"))
            return
        lines = [Text(f"warning: {w}", style="yellow") for w in warnings]
        self.app.call_from_thread(
            self._show_plan, worker, plan, Group(*lines, _short_hashes(render_plan(plan)))
        )
        # then what the Hub holds (read-only; one line if it cannot be reached)
        try:
            hub = hub_lines(plan)
        except Exception as exc:  # the local plan stands; the wizard stays open
            hub = dict.fromkeys((r.repo_id for r in plan.repos), f"not checked: {explain(exc)[0]}")
        self.app.call_from_thread(
            self._show_plan, worker, plan, Group(*lines, _short_hashes(render_plan(plan, hub)))
        )

    def _show_plan(self, worker: Worker, plan: PushPlan | None, shown) -> None:
        if worker is not self._plan_worker:  # a later dry run (a save) replaced this one
            return
        self.plan = plan
        self.query_one("#plan", Static).update(Group(Text("Dry run", style="bold"), shown))

    def render_facts(self, facts: PushFacts, measured: dict[str, Any]):
        rows = [
            (repo.role, Text(f"{repo.url}  ({repo.status})", style="link " + repo.url))
            for repo in facts.repos
        ]
        return facts_table(rows, title="Released")


def _short_hashes(plan: str) -> Group:
    """The plan a file to a line: each sha256 cut to 12 digits, and at narrow widths a
    file's line ends in … rather than wrapping its hash under the next name."""
    lines = re.sub(r"\b([0-9a-f]{12})[0-9a-f]{52}\b", r"\1…", plan).splitlines()
    return Group(
        *(
            Text(line, no_wrap=True, overflow="ellipsis") if "sha256 " in line else Text(line)
            for line in lines
        )
    )
