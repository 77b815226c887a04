"""The release wizard, driven with Textual's pilot on tiny real models.

The wizard holds no pipeline logic, so these tests check what it makes the pipeline do:
the manifest, release.yaml and the files of each stage, and what the screen shows.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml
from textual.widgets import Input, OptionList, SelectionList, Static

from release.core.events import Progress
from release.core.manifest import MANIFEST_NAME, Manifest
from release.core.units import human
from release.gguf.needs import gguf_file_bytes
from release.merge.facts import AdapterFacts
from release.spec.schema import GGUF_TYPES
from release.tui.app import make_wizard
from release.tui.runs import stream_release
from tests.support.tui_pilot import (
    SIZE,
    TIMEOUT,
    confirmation,
    lint_shows,
    opened,
    settle,
    show,
    shown_step,
    text_of,
    wait_until,
)
from tests.support.tui_workspace import record_current_keys

pytestmark = pytest.mark.anyio


async def test_intake_from_an_adapter_folder_saves_the_spec(tmp_path, tiny_adapter, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_wizard(tiny_adapter)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        assert shown_step(app) == "adapter"
        assert app.screen.query_one("#adapter-path", Input).value == str(tiny_adapter)
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert app.screen.states["adapter"] == "done"
        assert shown_step(app) == "adapter"  # stays, to show what intake found
        assert "LORA, r=4, alpha=8" in text_of(app, "#pane-adapter .facts")
    spec_path = tiny_adapter.parent / "release.yaml"
    saved = yaml.safe_load(spec_path.read_text())
    assert saved["adapter"]["path"] == "adapter"
    manifest = Manifest.load(tiny_adapter.parent / "build" / MANIFEST_NAME)
    assert manifest.stages["adapter"].facts["r"] == 4
    assert json.loads((tiny_adapter.parent / "build/adapter/adapter_config.json").read_text())


def write_spec(folder: Path, base_dir: Path, adapter_dir: Path, **sections) -> Path:
    """A release.yaml for the tiny model: eval off (a random model cannot chat)."""
    spec = {
        "name": "tiny-chat",
        "version": "1.0.0",
        "base": {"repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "path": str(base_dir)},
        "adapter": {"path": str(adapter_dir)},
        "eval": {"enabled": False},
        "gguf": {"types": []},
        "card": {"summary": "A tiny test model.", "license": "apache-2.0", "language": ["en"]},
        **sections,
    }
    path = folder / "release.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


async def test_walk_from_intake_to_push(tmp_path, tiny_llama_dir, tiny_adapter, hub):
    spec_path = write_spec(tmp_path, tiny_llama_dir, tiny_adapter)
    workspace = tmp_path / "build"
    app = make_wizard(spec_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(app, pilot)
        assert shown_step(app) == "adapter"
        assert screen.states["evaluate"] == screen.states["gguf"] == "skipped"
        for stage in ("adapter", "merge", "card"):
            await show(app, pilot, stage)
            await pilot.press("ctrl+r")
            await settle(app, pilot)
            assert screen.states[stage] == "done", text_of(app, f"#pane-{stage} StageRun #state")

        await show(app, pilot, "push")
        screen.query_one("#repo-id", Input).value = "tester/tiny-chat"
        await pilot.press("ctrl+s")  # saved: the dry run plans with the new repo
        await settle(app, pilot)
        assert "model repo tester/tiny-chat" in text_of(app, "#plan")
        await pilot.press("ctrl+r")
        question = await confirmation(app, pilot)
        # the card names the repo, so it is written again before anything is pushed
        assert question.startswith("First redo Card (changed with the spec). Push"), question
        assert screen.states["card"] == "stale"
        await pilot.press("y")
        await settle(app, pilot)
        assert screen.states["push"] == screen.states["card"] == "done"
        assert f"{hub.url}/tester/tiny-chat" in text_of(app, "#pane-push .facts")

    manifest = Manifest.load(workspace / MANIFEST_NAME)
    assert sorted(manifest.stages) == ["adapter", "card", "merge", "push"]
    assert not list(workspace.glob(".partial-*"))
    saved = yaml.safe_load(spec_path.read_text())
    assert saved["push"] == {"repo_id": "tester/tiny-chat"}
    card = hub.read("tester/tiny-chat", "README.md", revision="v1.0.0")
    assert card == (workspace / "card" / "README.md").read_bytes()
    assert b"A tiny test model." in card


async def test_gguf_types_chosen_in_the_list_are_exported(tmp_path, tiny_llama_dir, tiny_adapter):
    spec_path = write_spec(tmp_path, tiny_llama_dir, tiny_adapter)
    app = make_wizard(spec_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(app, pilot)
        choices = screen.query_one("#gguf-types", SelectionList)
        assert "≈" not in str(choices.get_option("type-q8_0").prompt)  # parameters unknown
        await pilot.press("ctrl+r")  # intake counts the base's parameters
        await settle(app, pilot)
        await show(app, pilot, "gguf")
        assert choices.selected == []
        intake = AdapterFacts.of(Manifest.load(tmp_path / "build" / MANIFEST_NAME))
        q8_0 = round(intake.base_parameters * 34 / 32)  # q8_0: 34 bytes per 32 weights
        expected = human(q8_0, "bytes")
        assert f"≈ {expected}" in str(choices.get_option("type-q8_0").prompt)
        choices.focus()
        for _ in range(GGUF_TYPES.index("q8_0")):
            await pilot.press("down")
        await pilot.press("space")
        await pilot.press("ctrl+r")  # runs intake and the merge first
        await settle(app, pilot)
        assert [screen.states[s] for s in ("adapter", "merge", "gguf")] == ["done"] * 3
        files = text_of(app, "#pane-gguf .facts")
        assert "tiny-chat-Q8_0.gguf" in files and "llama_cpp" in files  # the loader that checked it
        # merged: each file planned from the merged model's tensors, as the gguf step's
        # preflight does, in a worker that settle() waited for
        planned = gguf_file_bytes(tmp_path / "build" / "merge", ["q8_0"])["q8_0"]
        assert f"≈ {human(planned, 'bytes')}" in str(choices.get_option("type-q8_0").prompt)
        assert "merged model" in text_of(app, "#gguf-types-label")
    assert yaml.safe_load(spec_path.read_text())["gguf"]["types"] == ["q8_0"]
    gguf_file = tmp_path / "build" / "gguf" / "tiny-chat-Q8_0.gguf"
    record = Manifest.load(tmp_path / "build" / MANIFEST_NAME).stages["gguf"].facts["files"][0]
    assert record["bytes"] == gguf_file.stat().st_size
    loss = record["quality"]  # what the file loses on the held-out text, each figure shown
    assert f"KLD mean: {loss['kld_mean']:.4f}" in files
    assert f"KLD 99%: {loss['kld_p99']:.4f}" in files
    assert f"same top-1: {loss['same_top1']:.1%}" in files
    assert f"PPL ratio: {loss['ppl_ratio']:.3f}" in files
    assert gguf_file.stat().st_size <= planned <= gguf_file.stat().st_size * 1.002


async def test_cancel_leaves_nothing_half_written(
    tmp_path, tiny_llama_dir, tiny_adapter, monkeypatch
):
    import release.tui.screens.release as screen_module

    merging = threading.Event()

    def stream_until_cancelled(spec, post, cancel, **options):
        """The real run, held at the merge's first progress until the user cancels."""

        def post_and_hold(message):
            post(message)
            event = getattr(message, "event", None)
            if isinstance(event, Progress) and event.stage == "merge" and not merging.is_set():
                merging.set()
                assert cancel.wait(TIMEOUT), "escape did not cancel"

        return stream_release(spec, post_and_hold, cancel, **options)

    monkeypatch.setattr(screen_module, "stream_release", stream_until_cancelled)
    spec_path = write_spec(tmp_path, tiny_llama_dir, tiny_adapter)
    app = make_wizard(spec_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(app, pilot)
        await show(app, pilot, "merge")
        await pilot.press("ctrl+r")
        await wait_until(pilot, merging.is_set, "the merge's first progress")
        await wait_until(
            pilot, lambda: screen.states["merge"] == "running", "the merge step to run"
        )
        await pilot.press("escape")
        await settle(app, pilot)
        assert app.screen.states["merge"] == "pending"
        assert app.screen.states["adapter"] == "done"
        assert "cancelled" in text_of(app, "#pane-merge StageRun #state")
    workspace = tmp_path / "build"
    assert not (workspace / "merge").exists()
    assert not list(workspace.glob(".partial-*"))
    assert sorted(Manifest.load(workspace / MANIFEST_NAME).stages) == ["adapter"]


async def test_resume_opens_at_the_first_unfinished_step(built_release, tmp_path):
    spec_path = tmp_path / "release.yaml"
    spec_path.write_text(built_release.spec.to_yaml(tmp_path))
    manifest = built_release.manifest()
    del manifest.stages["card"]
    manifest.save(built_release.manifest_path)
    record_current_keys(built_release.spec)
    app = make_wizard(spec_path)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        assert shown_step(app) == "card"
        assert [app.screen.states[s] for s in ("adapter", "merge", "gguf", "push")] == [
            "done",
            "done",
            "done",
            "pending",
        ]


async def test_card_lint_follows_the_form_and_leads_to_the_field(tmp_path, monkeypatch):
    from tests.support.tui_workspace import snapshot_workspace

    monkeypatch.chdir(tmp_path)
    spec_path = snapshot_workspace(tmp_path, ("adapter", "merge", "evaluate", "gguf"))
    app = make_wizard(spec_path)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        assert shown_step(app) == "card"
        lint = app.screen.query_one("#card-lint", OptionList)
        await wait_until(pilot, lambda: lint.option_count, "the card's first lint")
        assert lint.option_count == 1 and lint.get_option_at_index(0).id == "ok"
        app.screen.query_one("#card-language", Input).value = "en, klingon"
        await wait_until(pilot, lambda: lint_shows(app, "klingon"), "the lint of 'klingon'")
        problem = lint.get_option_at_index(0)
        assert "klingon" in str(problem.prompt) and problem.id.endswith(":language")
        lint.focus()
        lint.highlighted = 0
        await pilot.press("enter")
        assert app.focused is app.screen.query_one("#card-language", Input)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    assert yaml.safe_load(spec_path.read_text())["card"]["language"] == ["en", "klingon"]


async def test_a_step_whose_inputs_changed_reads_changed_and_the_wizard_resumes_there(
    tmp_path, monkeypatch
):
    from tests.support.tui_workspace import snapshot_workspace

    monkeypatch.chdir(tmp_path)
    spec_path = snapshot_workspace(tmp_path, ("adapter", "merge", "evaluate"))
    spec = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**spec, "merge": {"shard_size": "2MB"}}))
    app = make_wizard(spec_path)
    async with app.run_test(size=SIZE) as pilot:
        states = (await opened(app, pilot)).states
        assert [states[s] for s in ("adapter", "merge", "evaluate", "gguf")] == [
            "done",
            "stale",
            "stale",  # built on the merge, so it cannot be trusted either
            "pending",
        ]
        assert shown_step(app) == "merge"
        steps = app.screen.query_one("#steps", OptionList)
        # what changed: its name under the step, old -> new in the step's pane
        merge = str(steps.get_option("merge").prompt).split()
        assert merge == ["◐", "Merge", "changed", "setting", "shard_size"]
        assert str(steps.get_option("evaluate").prompt).split()[3:] == ["merge", "runs", "again"]
        state = " ".join(text_of(app, "#pane-merge StageRun #state").split())
        assert "changed since its last run (setting shard_size: 2000000000 -> 2000000)" in state


async def test_page_down_scrolls_a_step_to_its_results_at_80x24(tmp_path, monkeypatch):
    from tests.support.tui_workspace import snapshot_workspace

    monkeypatch.chdir(tmp_path)
    spec_path = snapshot_workspace(tmp_path, ("adapter", "merge", "evaluate", "gguf"))
    app = make_wizard(spec_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(app, pilot)
        await show(app, pilot, "gguf")
        pane = app.screen.query_one("#pane-gguf")
        files = pane.query_one(".facts", Static)
        app.screen.query_one("#gguf-types", SelectionList).focus()  # it would take the key
        assert not pane.region.contains_region(files.region)
        await pilot.press("pagedown")
        await wait_until(pilot, lambda: pane.scroll_y > 0, "page down to scroll the step")
        assert pane.region.intersection(files.region).height >= 5  # the files table shows
        await pilot.press("pageup")
        await wait_until(pilot, lambda: pane.scroll_y == 0, "page up to scroll back")


async def test_a_hub_lookup_that_breaks_leaves_the_plan_and_the_wizard(
    built_release, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_ENDPOINT", "http://[::1")  # httpx: InvalidURL, not a network error
    record_current_keys(built_release.spec)
    (tmp_path / "release.yaml").write_text(built_release.spec.to_yaml(tmp_path))
    app = make_wizard(tmp_path / "release.yaml")
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        await show(app, pilot, "push")
        await settle(app, pilot)
        plan = text_of(app, "#plan")
        assert "model repo tester/tiny-chat" in plan and "README.md" in plan
        assert "on the Hub: not checked: " in plan
        assert app.is_running


async def test_choosing_an_adapter_fills_the_base_and_name_it_names(
    tmp_path, tiny_adapter, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    recorded = json.loads((tiny_adapter / "adapter_config.json").read_text())  # by PEFT
    app = make_wizard(None)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(app, pilot)
        assert screen.query_one("#name", Input).value == ""
        assert app.focused is screen.query_one("#adapter-path", Input)  # type straight away
        await pilot.press(*str(tiny_adapter))
        await wait_until(
            pilot,
            lambda: screen.query_one("#name", Input).value,
            "the adapter's config to fill the name",
        )
        base = recorded["base_model_name_or_path"]
        assert Path(base).is_dir()  # the tiny adapter was trained on a local folder
        assert screen.query_one("#base-path", Input).value == base
        assert screen.query_one("#base-repo", Input).value == ""
        assert screen.query_one("#name", Input).value == tiny_adapter.name
        assert "give the base" not in text_of(app, "#pane-adapter .problems")


async def test_intake_of_an_adapter_on_the_hub_keeps_its_repo_id(
    tmp_path, tiny_llama_dir, tiny_adapter, hub
):
    from tests.support.hub_fixtures import upload_folder

    commit = upload_folder(hub, "trainer/tiny-lora", tiny_adapter)
    spec_path = write_spec(tmp_path, tiny_llama_dir, tiny_adapter)
    spec_path.write_text(
        spec_path.read_text().replace(f"path: {tiny_adapter}", "repo_id: trainer/tiny-lora")
    )
    app = make_wizard(spec_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        shown = app.screen.query_one("#adapter-repo", Input)
        assert shown.value == "trainer/tiny-lora" and shown.disabled
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert app.screen.states["adapter"] == "done"
    saved = yaml.safe_load(spec_path.read_text())
    assert saved["adapter"] == {"repo_id": "trainer/tiny-lora"}
    facts = Manifest.load(tmp_path / "build" / MANIFEST_NAME).stages["adapter"].facts
    assert facts["adapter_commit"] == commit


async def test_several_folders_start_a_merge_recipe_as_init_writes_it(tmp_path, tiny_adapter):
    """Issue #29 item 6: the wizard on several folders starts the spec `init` writes for
    them (a linear recipe, no adapter), beside them; intake shows the recipe's models
    and checks the base alone. Opened on them again, it takes up that release.yaml;
    one whose recipe does not read them is refused in one line."""
    import shutil

    from release.cli import main
    from release.core.errors import InputError
    from release.tui.session import Session

    folders = [tmp_path / "adapters" / name for name in ("a", "b")]
    for folder in folders:
        shutil.copytree(tiny_adapter, folder)
    spec_path = tmp_path / "adapters" / "release.yaml"
    app = make_wizard(folders)
    async with app.run_test(size=SIZE) as pilot:
        await opened(app, pilot)
        assert shown_step(app) == "adapter"
        shown = app.screen.query_one("#recipe-inputs", Input)
        assert (shown.value, shown.disabled) == ("a, b", True)
        assert not app.screen.query("#adapter-path")
        await pilot.press("ctrl+r")
        await settle(app, pilot)
        assert app.screen.states["adapter"] == "done"
        assert "none: merge.recipe names the models" in text_of(app, "#pane-adapter .facts")
    written = spec_path.read_text()
    assert main(["init", *map(str, folders), "-o", str(spec_path), "--overwrite"]) == 0
    assert written == spec_path.read_text()  # the wizard's release.yaml is init's
    saved = yaml.safe_load(written)
    assert "adapter" not in saved
    assert saved["merge"]["recipe"] == {
        "merge_method": "linear",
        "models": [{"model": n, "parameters": {"weight": 1.0}} for n in ("a", "b")],
    }
    facts = AdapterFacts.of(Manifest.load(tmp_path / "adapters" / "build" / MANIFEST_NAME))
    assert facts.peft_type is None and facts.base_fingerprint

    assert Session.open(folders).spec_path == spec_path  # taken up again
    (tmp_path / "adapters" / "c").mkdir()
    with pytest.raises(InputError) as refused:
        Session.open([*folders, tmp_path / "adapters" / "c"])
    assert refused.value.message == (
        f"{spec_path}: already there, and its merge.recipe does not read these folders"
    )
