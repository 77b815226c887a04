"""The wizard's push plan is the latest dry run's, never an older one that finished late.

Each save starts a new dry run in a thread worker; the one before it may still be asking
the Hub (a slow or unreachable endpoint). When that older answer arrives, it must not
replace the newer plan on the screen, nor the plan the push confirmation reads.
"""

from __future__ import annotations

import threading

import pytest

from release.hub import remote
from tests.tui_pilot import SIZE, settle, text_of
from tests.tui_workspace import record_current_keys

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
            assert release_old.wait(30)
        return {repo.repo_id: answer for repo in plan.repos}

    monkeypatch.setattr(remote, "hub_lines", hub_lines)
    app = make_wizard(tmp_path / "release.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = app.screen
        pane = screen.pane("push")
        screen.show_step("push")
        await pilot.pause(0.5)
        assert len(calls) == 1  # the opening's dry run waits on the Hub
        pane.refresh_plan(screen.session.spec)  # a save: a NEW dry run
        newer = pane._plan_worker
        await newer.wait()
        await pilot.pause()
        assert "on the Hub: NEW" in text_of(app, "#plan")
        release_old.set()  # the older worker's answer arrives last
        await settle(app, pilot)
        await pilot.pause(0.2)
        shown = text_of(app, "#plan")
        assert "on the Hub: NEW" in shown and "OLD" not in shown
        assert pane.plan is not None
