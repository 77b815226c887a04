"""The wizard releases the built-in demo (SmolLM2-135M-Instruct and its trained LoRA)
from intake to a push to the local Hub, a step at a time as a user would.

The wizard holds no pipeline logic, so its release must be the CLI's: the merged
weights and the GGUF tensors are compared with the session's CLI run of the same demo,
and the release.yaml it saved must let the CLI repeat the release with nothing to redo.
"""

from __future__ import annotations

import pytest
from gguf import GGUFReader
from textual.widgets import Input

from release.cli import main
from release.core.manifest import MANIFEST_NAME, Manifest
from release.evaluate.facts import EvaluateFacts
from release.tui.app import make_wizard
from tests.support.demo_fixtures import make_demo_folder
from tests.support.tui_pilot import SIZE, confirmation, opened, settle, show, shown_step, text_of

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

REPO_ID = "tester/smollm2-demo"
GGUF_REPO_ID = "tester/smollm2-demo-GGUF"


def gguf_contents(path) -> tuple[dict[str, bytes], dict[str, object]]:
    """A GGUF file's tensors (bytes by name) and its metadata values."""
    reader = GGUFReader(path)
    tensors = {t.name: t.data.tobytes() for t in reader.tensors}
    metadata = {name: field.contents() for name, field in reader.fields.items()}
    return tensors, metadata


async def test_the_wizard_releases_the_demo(demo_release, smollm2_adapter_dir, tmp_path, hub):
    spec_path = make_demo_folder(tmp_path, smollm2_adapter_dir)
    written_by_demo = spec_path.read_text()
    app = make_wizard(spec_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(app, pilot)
        assert shown_step(app) == "adapter"
        # the repos first: the card and the GGUF metadata name them
        await show(app, pilot, "push")
        screen.query_one("#repo-id", Input).value = REPO_ID
        screen.query_one("#gguf-repo-id", Input).value = GGUF_REPO_ID
        await pilot.press("ctrl+s")
        await settle(app, pilot)

        for stage in ("adapter", "merge", "evaluate", "gguf", "card"):
            await show(app, pilot, stage)
            await pilot.press("ctrl+r")
            await settle(app, pilot)
            assert screen.states[stage] == "done", text_of(app, f"#pane-{stage} StageRun #state")
        evaluation = text_of(app, "#pane-evaluate .facts")
        assert "gate" in evaluation and "passed" in evaluation
        assert "FAILED" not in evaluation
        exported = text_of(app, "#pane-gguf .facts")
        assert "Q8_0.gguf" in exported and "llama_cpp 100.0%" in exported, exported

        await show(app, pilot, "push")
        await pilot.press("ctrl+r")
        question = await confirmation(app, pilot)  # after the dry run rehashes the files
        assert question.startswith("Push ") and f"{REPO_ID}, {GGUF_REPO_ID}" in question
        await pilot.press("y")
        await settle(app, pilot)
        assert screen.states["push"] == "done"
        released = text_of(app, "#pane-push .facts")
        assert f"{hub.url}/{REPO_ID}" in released and f"{hub.url}/{GGUF_REPO_ID}" in released

    workspace = tmp_path / "build"
    manifest = Manifest.load(workspace / MANIFEST_NAME)
    assert sorted(manifest.stages) == ["adapter", "card", "evaluate", "gguf", "merge", "push"]
    assert not list(workspace.glob(".partial-*"))

    # the saved spec is the demo's file with a push section: every comment is still there
    saved = spec_path.read_text()
    assert [line for line in written_by_demo.splitlines() if line not in saved] == []
    assert f"push:\n  repo_id: {REPO_ID}\n  gguf_repo_id: {GGUF_REPO_ID}\n" in saved

    # on the Hub: the workspace's bytes, tagged
    card = hub.read(REPO_ID, "README.md", revision="v0.1.0")
    assert card == (workspace / "card" / "README.md").read_bytes()
    weights = hub.read(REPO_ID, "model.safetensors", revision="v0.1.0")
    assert weights == (workspace / "merge" / "model.safetensors").read_bytes()
    q8_name = "smollm2-135m-unit-converter-Q8_0.gguf"
    assert hub.read(GGUF_REPO_ID, q8_name) == (workspace / "gguf" / q8_name).read_bytes()

    # the CLI's release of the same demo: the same merged weights, eval numbers, tensors
    cli = Manifest.load(demo_release / "build" / MANIFEST_NAME)
    assert manifest.stages["merge"].outputs == cli.stages["merge"].outputs
    ours, theirs = EvaluateFacts.of(manifest), EvaluateFacts.of(cli)
    assert ours.perplexity == theirs.perplexity
    assert ours.equivalence == theirs.equivalence
    wizard_tensors, wizard_meta = gguf_contents(workspace / "gguf" / q8_name)
    cli_tensors, cli_meta = gguf_contents(demo_release / "build" / "gguf" / q8_name)
    assert wizard_tensors == cli_tensors
    # the one difference: the wizard's spec names the GGUF repo, the CLI's demo none
    assert "general.repo_url" not in cli_meta
    assert wizard_meta.pop("general.repo_url") == f"https://huggingface.co/{GGUF_REPO_ID}"
    assert wizard_meta.pop("GGUF.kv_count") == cli_meta.pop("GGUF.kv_count") + 1
    assert wizard_meta == cli_meta

    # the CLI repeats the wizard's release from the saved spec: every stage is skipped
    assert main(["run", str(spec_path)]) == 0
    assert Manifest.load(workspace / MANIFEST_NAME).stages == manifest.stages
