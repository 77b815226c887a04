"""The wizard's push plan is the latest dry run's, never an older one that finished late.

Each save starts a new dry run in a thread worker; the one before it may still be asking
the Hub (a slow or unreachable endpoint). When that older answer arrives, it must not
replace the newer plan on the screen, nor the plan the push confirmation reads.
"""

from __future__ import annotations

import threading

import pytest

from release.hub import remote
from release.tui.panes.push import PushPane
from tests.support.tui_pilot import SIZE, TIMEOUT, opened, settle, show, text_of, wait_until
from tests.support.tui_workspace import record_current_keys

pytestmark = pytest.mark.anyio


async def test_a_late_hub_answer_of_an_older_plan_is_dropped(built_release, tmp_path, monkeypatch):
    from release.tui.app import make_wizard

    monkeypatch.chdir(tmp_path)
    record_current_keys(built_release.spec)
    (tmp_path / "release.yaml").write_text(built_release.spec.to_yaml(tmp_path))
    release_old = threading.Event()
    calls = []

    def hub_lines(plan, api=None):
        calls.append(plan)
        answer = "OLD" if len(calls) == 1 else "NEW"
        if answer == "OLD":  # the Hub is slow for the first dry run (the wizard's opening)
            assert release_old.wait(TIMEOUT)
        return {repo.repo_id: answer for repo in plan.repos}

    shown_by = []  # the dry run (worker) of each plan the pane was handed, in order
    show_plan = PushPane._show_plan

    def record_show_plan(pane, worker, plan, shown):
        shown_by.append(worker)
        show_plan(pane, worker, plan, shown)

    monkeypatch.setattr(remote, "hub_lines", hub_lines)
    monkeypatch.setattr(PushPane, "_show_plan", record_show_plan)
    app = make_wizard(tmp_path / "release.yaml")
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(app, pilot)
        pane = screen.pane("push")
        await show(app, pilot, "push")
        await wait_until(pilot, lambda: calls, "the opening's dry run to ask the Hub")
        older = pane._plan_worker
        pane.refresh_plan(screen.session.spec)  # a save: a NEW dry run
        await settle(app, pilot)
        assert len(calls) == 2
        assert "on the Hub: NEW" in text_of(app, "#plan")
        release_old.set()  # the older worker's answer arrives last
        await wait_until(
            pilot, lambda: shown_by.count(older) == 2, "the older dry run's Hub answer"
        )
        shown = text_of(app, "#plan")
        assert "on the Hub: NEW" in shown and "OLD" not in shown
        assert pane.plan is not None
