"""The GGUF step at 80, 100 and 150 columns: the files' table names every column and each
type's pass mark (a list where the table would not fit), and a chosen quant type carries
a check mark, not only a colour. The list takes over wherever the table would break a
word, at any width."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from textual.widgets import SelectionList

from release.tui.app import make_wizard
from release.tui.widgets.facts import TableOrList
from tests.support.tui_pilot import opened, settle, show
from tests.support.tui_workspace import snapshot_workspace

pytestmark = pytest.mark.anyio


def _drawn(renderable, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(renderable)
    return console.export_text()


def test_the_list_takes_over_wherever_the_table_would_break_a_word():
    """A wrapping column of unbroken names beside ``no_wrap`` ones, as the files table
    has: rich never narrows a ``no_wrap`` column, so where the columns do not all fit
    whole it folds the names (from 73 to 89 columns here, the table's own measure says
    they fit). At every width the names and figures read whole, and the table is drawn
    wherever it fits."""
    table = Table(title="Files", expand=True)
    table.add_column("file", overflow="fold")
    for header in ("size", "pass at", "KLD mean", "KLD 99%", "same top-1", "PPL ratio"):
        table.add_column(header, justify="right", no_wrap=True)
    rows = [
        ("tiny-chat-Q8_0.gguf", "144.8 MB", "≥ 95.0%", "0.0065", "0.0330", "94.1%", "1.010"),
        ("tiny-chat-F16.gguf", "271.1 MB", "≥ 99.0%", "0.0001", "0.0004", "99.8%", "1.000"),
    ]
    for row in rows:
        table.add_row(*row)
    wide = Console(width=1000)
    whole = Measurement.get(wide, wide.options, table).maximum  # each column at its widest
    layouts = set()
    for width in range(40, whole + 10):
        drawn = _drawn(TableOrList(table), width)
        as_table = "┃ file" in drawn
        layouts.add(as_table)
        for row in rows:
            assert all(cell in drawn for cell in row), (width, drawn)
        if as_table:  # a header on one line, each of its words whole
            assert all(f" {header} " in drawn for header in ("same top-1", "PPL ratio"))
        assert as_table == (width >= whole), width
    assert layouts == {True, False}


def _lines_of(app, selector: str) -> list[str]:
    """What a widget shows on the screen, line by line."""
    box = app.screen.query_one(selector).region
    strips = app.screen._compositor.render_strips()[box.y : box.bottom]
    return [strip.crop(box.x, box.right).text.rstrip() for strip in strips]


async def _gguf_step(tmp_path, monkeypatch, columns: int):
    monkeypatch.chdir(tmp_path)
    spec_path = snapshot_workspace(tmp_path, ("adapter", "merge", "evaluate", "gguf"))
    app = make_wizard(spec_path.relative_to(tmp_path))
    return app, app.run_test(size=(columns, 60))


def _listed(name: str, size: str, agreement: list[str], pass_at: str) -> list[str]:
    """A file in the list layout: the fixture's files have no held-out figures (recorded
    before llama.cpp measured them), so their four quant-loss lines read "—"."""
    loss = ["KLD mean", "KLD 99%", "same top-1", "PPL ratio"]
    return [
        f"• {name}",
        f"  size: {size}",
        *agreement,
        f"  pass at: {pass_at}",
        *[f"  {label}: —" for label in loss],
        "  check: ✔ pass",
    ]


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            80,  # the pane is 52 wide, the table needs 109: a list
            [
                "Files",
                *_listed(
                    "demo-F16.gguf",
                    "271.1 MB",
                    ["  top-1 agreement: transformers 100.0%, llama_cpp", "  99.5%"],
                    "≥ 99.0%",
                ),
                *_listed(
                    "demo-Q8_0.gguf",
                    "144.8 MB",
                    ["  top-1 agreement: transformers 98.5%, llama_cpp", "  97.0%"],
                    "≥ 95.0%",
                ),
            ],
        ),
        (
            100,  # 72 wide: still a list, each loader's figure on the line of its name
            [
                "Files",
                *_listed(
                    "demo-F16.gguf",
                    "271.1 MB",
                    ["  top-1 agreement: transformers 100.0%, llama_cpp 99.5%"],
                    "≥ 99.0%",
                ),
                *_listed(
                    "demo-Q8_0.gguf",
                    "144.8 MB",
                    ["  top-1 agreement: transformers 98.5%, llama_cpp 97.0%"],
                    "≥ 95.0%",
                ),
            ],
        ),
        (
            150,  # 122 wide: the table, every header and file name whole on its line
            [
                "Files",
                "┏━━━━━━━━━━━━━━━━┳━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━┳"
                "━━━━━━━━━┳━━━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━┓",
                "┃ file           ┃     size ┃ top-1 agreement           ┃ pass at ┃ KLD mean ┃"
                " KLD 99% ┃ same top-1 ┃ PPL ratio ┃ check  ┃",
                "┡━━━━━━━━━━━━━━━━╇━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━╇"
                "━━━━━━━━━╇━━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━┩",
                "│ demo-F16.gguf  │ 271.1 MB │ transformers 100.0%,      │ ≥ 99.0% │        — │"
                "       — │          — │         — │ ✔ pass │",
                "│                │          │ llama_cpp 99.5%           │         │          │"
                "         │            │           │        │",
                "│ demo-Q8_0.gguf │ 144.8 MB │ transformers 98.5%,       │ ≥ 95.0% │        — │"
                "       — │          — │         — │ ✔ pass │",
                "│                │          │ llama_cpp 97.0%           │         │          │"
                "         │            │           │        │",
                "└────────────────┴──────────┴───────────────────────────┴─────────┴──────────┴"
                "─────────┴────────────┴───────────┴────────┘",
            ],
        ),
    ],
    ids=["80", "100", "150"],
)
async def test_the_files_name_their_columns_and_pass_marks(
    tmp_path, monkeypatch, columns, expected
):
    app, running = await _gguf_step(tmp_path, monkeypatch, columns)
    async with running as pilot:
        await opened(app, pilot)
        await show(app, pilot, "gguf")
        await settle(app, pilot)
        shown = _lines_of(app, "#pane-gguf .facts")
    assert shown[: len(expected)] == expected
    assert "pass at: the least each quant type must reach" in " ".join(" ".join(shown).split())


@pytest.mark.parametrize("columns", [80, 100])
async def test_a_chosen_type_is_marked_by_a_check_not_only_colour(tmp_path, monkeypatch, columns):
    app, running = await _gguf_step(tmp_path, monkeypatch, columns)
    async with running as pilot:
        await opened(app, pilot)
        await show(app, pilot, "gguf")
        await settle(app, pilot)

        def marks() -> dict[str, bool]:
            """Each type the list shows, and whether its line carries the check mark."""
            lines = _lines_of(app, "#gguf-types")
            rows = [line.split("▐X▌", 1)[1].split() for line in lines if "▐X▌" in line]
            return {row[row[0] == "✓"]: row[0] == "✓" for row in rows}

        assert {"f32", "f16", "q8_0", "q4_0"} <= marks().keys()  # the types on the screen
        assert {t for t, chosen in marks().items() if chosen} == {"f16", "q8_0"}
        choices = app.screen.query_one("#gguf-types", SelectionList)
        choices.deselect("f16")
        choices.select("q4_0")
        await pilot.pause()
        assert {t for t, chosen in marks().items() if chosen} == {"q8_0", "q4_0"}


def _on_the_local_tasks(quant: str, values: list[float], drops: list[float]) -> dict:
    """A file's scores on tests/eval_tasks against the merged model's, as SmolLM2-135M-
    Instruct's files measured them (README), under a limit of 70% that let them pass."""
    merged = {
        ("mr_choice", "acc", "none"): 0.5,
        ("mr_generate", "exact_match", "first_number"): 0.5,
    }
    merged |= {("mr_perplexity", "word_perplexity", "none"): 180.6408}
    rows = zip(merged.items(), values, drops, strict=True)
    return {
        "type": quant,
        "file": f"demo-{quant.upper()}.gguf",
        "max_task_drop": 0.7,
        "compared": [
            {"task": task, "metric": metric, "filter": filter_, "merged": before}
            | {"value": value, "drop": drop}
            for ((task, metric, filter_), before), value, drop in rows
        ],
    }


ON_THE_LOCAL_TASKS = [
    _on_the_local_tasks("f16", [0.5, 0.5, 180.6408], [0.0, 0.0, 0.0]),
    _on_the_local_tasks("q4_k_m", [0.5, 0.1667, 203.9088], [0.0, 0.6666, 0.128811]),
]


async def test_the_files_scores_on_the_release_s_tasks_stand_beside_the_merged_model_s(
    tmp_path, monkeypatch
):
    """eval.tasks.gguf: under the files, each task's score on the merged model and on each
    file, with its change (a perplexity's rise is a loss), as the GGUF stage recorded
    them, and the limit they met."""
    from release.core.manifest import MANIFEST_NAME, Manifest

    app, running = await _gguf_step(tmp_path, monkeypatch, 150)
    manifest = Manifest.load(tmp_path / "build" / MANIFEST_NAME)
    manifest.stages["gguf"].facts["benchmarks"] = ON_THE_LOCAL_TASKS
    manifest.save(tmp_path / "build" / MANIFEST_NAME)
    async with running as pilot:
        await opened(app, pilot)
        await show(app, pilot, "gguf")
        await settle(app, pilot)
        shown = [" ".join(line.split()) for line in _lines_of(app, "#pane-gguf .facts")]
    table = shown[shown.index("Benchmarks on the files") :]
    assert [line for line in table if line.startswith(("┃", "│"))][:4] == [
        "┃ task ┃ metric ┃ merged ┃ F16 ┃ Q4_K_M ┃",
        "│ mr_choice │ acc │ 0.5 │ 0.5 (+0.0%) │ 0.5 (+0.0%) │",
        "│ mr_generate │ exact_match (first_number) │ 0.5 │ 0.5 (+0.0%) │ 0.1667 (-66.7%) │",
        "│ mr_perplexity │ word_perplexity │ 180.6 │ 180.6 (+0.0%) │ 203.9 (-12.9%) │",
    ]
    assert "gguf.max_task_drop 70%" in " ".join(shown)
