"""The wizard's eval step shows the gate's comparison, the table ``compare`` prints,
also when the gate said no (the stage recorded nothing then, the manifest kept why)."""

from __future__ import annotations

import pytest

from release.core.manifest import MANIFEST_NAME, Manifest, Refusal
from release.evaluate.facts import EvaluateFacts, GateFacts
from release.tui.app import make_wizard
from tests.support.tui_pilot import SIZE, text_of
from tests.support.tui_workspace import snapshot_workspace

pytestmark = pytest.mark.anyio

GATE = GateFacts(
    passed=False,
    compared=[
        {
            "task": "arc_easy",
            "metric": "acc",
            "n_shot": 0,
            "previous": 0.62,
            "current": 0.2,
            "drop": (0.62 - 0.2) / 0.62,
        },
        {
            "task": "gsm8k",
            "metric": "exact_match",
            "filter": "strict-match",
            "n_shot": 5,
            "previous": 0.31,
            "current": 0.32,
            "drop": (0.31 - 0.32) / 0.31,
        },
    ],
    failures=["arc_easy acc 0.62 → 0.2 (-68%)"],
    flagged=["piqa acc: n-shot differs (0 before, 5 now); not compared"],
)


async def test_the_eval_step_shows_the_refused_gates_comparison(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec_path = snapshot_workspace(tmp_path, ("adapter", "merge"))
    manifest_path = tmp_path / "build" / MANIFEST_NAME
    manifest = Manifest.load(manifest_path)
    manifest.refused["evaluate"] = Refusal(
        finished_at="2026-01-02T00:00:00+00:00",
        message="regression gate failed against the last release: arc_easy acc 0.62 → 0.2",
        facts=EvaluateFacts(gate=GATE).as_json(),
    )
    manifest.save(manifest_path)
    app = make_wizard(spec_path)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.show_step("evaluate")
        await pilot.pause()
        shown = text_of(app, "#pane-evaluate .facts")
    assert "✘ FAILED" in shown
    assert "arc_easy acc 0.62 → 0.2 (-68%)" in shown
    assert "piqa acc: n-shot differs (0 before, 5 now); not compared" in shown
    rows = [
        [cell.strip() for cell in line.split("│") if cell.strip()] for line in shown.splitlines()
    ]
    assert ["arc_easy", "acc", "none", "0", "0.62", "0.2", "-67.7%"] in rows
    assert ["gsm8k", "exact_match", "strict-match", "5", "0.31", "0.32", "+3.2%"] in rows
