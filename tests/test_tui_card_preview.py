"""The card step's preview at 80 and 100 columns: a table too wide for it is a list, so
no cell (a score) is cut to "…"; one that fits stays a table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from release.tui.app import make_wizard
from release.tui.card_preview import tables_as_lists
from tests.support.tui_pilot import opened, settle, show
from tests.support.tui_workspace import snapshot_workspace

pytestmark = pytest.mark.anyio

RESULTS = Path(__file__).parent / "cards_samples" / "results_2026-03-01T10-00-00.123456.json"
EVAL = """\
| Task | Metric | n-shot | Score | Stderr | Source |
| --- | --- | --- | --- | --- | --- |
| arc_easy | acc | 0 | 0.5829 | ± 0.0101 | results.json |
| ↳ mmlu_anatomy | acc | 0 | 0.2741 |  | results.json |
"""


def test_a_wide_table_becomes_a_list_with_every_cell():
    assert tables_as_lists(EVAL, 40).splitlines() == [
        "- **arc_easy**  ",
        "  Metric: acc · n-shot: 0 · Score: 0.5829 · Stderr: ± 0.0101 · Source: results.json",
        "- **↳ mmlu_anatomy**  ",
        "  Metric: acc · n-shot: 0 · Score: 0.2741 · Source: results.json",
    ]
    facts = "|  | Value |\n| --- | --- |\n| Parameters | 134.5M (134,515,008) |\n"
    assert tables_as_lists(facts, 20) == "- **Parameters**: 134.5M (134,515,008)\n"


def test_a_table_that_fits_or_sits_in_code_is_kept():
    assert tables_as_lists(EVAL, 200) == EVAL
    fenced = f"```\n{EVAL}```\n"
    assert tables_as_lists(fenced, 10) == fenced


def _preview_lines(app) -> list[str]:
    """The preview's rendered lines, its box grown to the whole card (the width unchanged)."""
    for selector in ("#card-editor", "#card-side", "#card-preview"):
        app.screen.query_one(selector).styles.height = "auto"
    box = app.screen.query_one("#card-preview").region
    strips = app.screen._compositor.render_strips()[box.y : box.bottom]
    return [strip.crop(box.x, box.right).text.rstrip() for strip in strips]


@pytest.mark.parametrize("columns", [80, 100])
async def test_the_evaluation_reads_whole_at_80_and_100_columns(tmp_path, monkeypatch, columns):
    monkeypatch.chdir(tmp_path)
    spec_path = snapshot_workspace(tmp_path, ("adapter", "merge", "evaluate", "gguf"))
    shutil.copy(RESULTS, tmp_path / RESULTS.name)
    spec = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**spec, "eval": {"results": [RESULTS.name]}}))
    app = make_wizard(spec_path.relative_to(tmp_path))
    async with app.run_test(size=(columns, 300)) as pilot:
        await opened(app, pilot)
        await show(app, pilot, "card")
        await settle(app, pilot)
        _preview_lines(app)  # grows the box
        await pilot.pause()
        lines = _preview_lines(app)
    screen = "\n".join(lines)
    assert "…" not in screen
    assert "• arc_easy" in screen and "• ↳ mmlu_anatomy" in screen
    for score in ("Score: 0.5829", "Score: 0.5215", "Score: 0.0182", "Score: 0.2741"):
        assert score in " ".join(screen.replace("│", " ").split())
    assert "• Parameters: 134.5M" in screen  # the model details, a label and its value
