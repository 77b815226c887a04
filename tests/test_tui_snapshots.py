"""Snapshots of each step of the wizard at 100x30 (and one at 80x24, one light).

The workspaces have fixed facts (tests/support/tui_workspace.py), so a snapshot changes only
when the screen does. Review the report before updating: pytest --snapshot-update.
"""

from __future__ import annotations

import pytest

from release.core.manifest import Manifest
from release.tui.app import LIGHT, make_wizard
from tests.support.tui_pilot import confirmation, lint_shows, settle, wait_until
from tests.support.tui_pilot import show as show_step
from tests.support.tui_workspace import record_current_keys, snapshot_workspace

SIZE = (100, 30)
BEFORE_PUSH = ("adapter", "merge", "evaluate", "gguf", "card")


def show(stage: str | None = None):
    async def run_before(pilot) -> None:
        if stage:
            await show_step(pilot.app, pilot, stage)
        await settle(pilot.app, pilot)

    return run_before


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def make(*done: str):
        return make_wizard(snapshot_workspace(tmp_path, done).relative_to(tmp_path))

    return make


def test_intake_before_anything_ran(workspace, snap_compare):
    assert snap_compare(workspace(), terminal_size=SIZE, run_before=show())


def test_intake_facts(workspace, snap_compare):
    assert snap_compare(workspace("adapter"), terminal_size=SIZE, run_before=show("adapter"))


def test_merge_done(workspace, snap_compare):
    app = workspace("adapter", "merge")
    assert snap_compare(app, terminal_size=SIZE, run_before=show("merge"))


def test_eval_results(workspace, snap_compare):
    app = workspace("adapter", "merge", "evaluate")
    assert snap_compare(app, terminal_size=SIZE, run_before=show("evaluate"))


def test_gguf_choices_and_files(workspace, snap_compare):
    app = workspace("adapter", "merge", "evaluate", "gguf")
    assert snap_compare(app, terminal_size=SIZE, run_before=show("gguf"))


def test_card_form_preview_and_lint(workspace, snap_compare):
    app = workspace("adapter", "merge", "evaluate", "gguf")
    assert snap_compare(app, terminal_size=SIZE, run_before=show("card"))


def test_card_lint_names_the_field(workspace, snap_compare):
    async def run_before(pilot) -> None:
        await show("card")(pilot)
        pilot.app.screen.query_one("#card-language").value = "en, klingon"
        await wait_until(pilot, lambda: lint_shows(pilot.app, "klingon"), "the lint of it")

    app = workspace("adapter", "merge", "evaluate", "gguf")
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def _fixed_times(built_release) -> None:
    """The built release with fixed finish times: the published manifest is stable."""
    manifest = built_release.manifest()
    for record in manifest.stages.values():
        record.finished_at = "2026-01-01T00:00:00+00:00"
    manifest.save(built_release.manifest_path)


def _same_bytes_on_every_cpu(built_release) -> None:
    """The built release's weights filled with exact values, its outputs recorded again.

    The push plan shows each file's sha256 and the manifest's, which holds them all.
    The tiny Llama's and the adapter's weights come from torch's normal_, whose AVX2
    kernel rounds otherwise than its others: between ATEN_CPU_CAPABILITY=avx2 and
    default, 9 of the tiny Llama's 21 bf16 tensors and both of the adapter's differ, so
    the snapshot would hold one CPU's hashes. Small integers over 64 are exact in bf16
    and float32 alike."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from release.core.files import iter_files

    workspace = built_release.workspace
    for path in sorted(workspace.rglob("*.safetensors")):
        with safe_open(path, "pt") as opened:
            metadata = opened.metadata()
        tensors = {
            name: ((torch.arange(t.numel()) % 17 - 8) / 64).to(t.dtype).reshape(t.shape)
            for name, t in load_file(path).items()
        }
        save_file(tensors, path, metadata=metadata)
    manifest = built_release.manifest()
    for stage, record in manifest.stages.items():
        if record.outputs:
            files = iter_files(workspace / stage)
            record.outputs = [manifest.record(path, relative_to=workspace) for path in files]
    manifest.save(built_release.manifest_path)


@pytest.fixture
def push_wizard(built_release, hub, tmp_path, monkeypatch):
    """The wizard at the push step, the local Hub holding nothing of the release yet."""
    monkeypatch.chdir(tmp_path)
    _same_bytes_on_every_cpu(built_release)
    _fixed_times(built_release)
    record_current_keys(built_release.spec)
    (tmp_path / "release.yaml").write_text(built_release.spec.to_yaml(tmp_path))
    assert Manifest.load(built_release.manifest_path).stages["card"]
    return make_wizard(tmp_path / "release.yaml")


def test_push_plan(push_wizard, snap_compare):
    assert snap_compare(push_wizard, terminal_size=SIZE, run_before=show("push"))


def test_push_confirmation(push_wizard, snap_compare):
    async def run_before(pilot) -> None:
        await show("push")(pilot)
        await pilot.press("ctrl+r")
        await confirmation(pilot.app, pilot)

    assert snap_compare(push_wizard, terminal_size=SIZE, run_before=run_before)


def test_small_terminal(workspace, snap_compare):
    assert snap_compare(workspace("adapter"), terminal_size=(80, 24), run_before=show("adapter"))


def test_light_theme(workspace, snap_compare):
    app = workspace("adapter", "merge")
    app.theme = LIGHT
    assert snap_compare(app, terminal_size=SIZE, run_before=show("merge"))


def test_changed_steps_and_the_card_at_80_columns(tmp_path, monkeypatch, snap_compare):
    """Tags changed since the last run: the GGUF (its metadata) and the card read
    'changed'; at 80 columns the card's preview sits under its form."""
    import yaml

    monkeypatch.chdir(tmp_path)
    spec_path = snapshot_workspace(tmp_path, BEFORE_PUSH)
    spec = yaml.safe_load(spec_path.read_text())
    spec["card"]["tags"] = ["lora", "demo", "units"]
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    app = make_wizard(spec_path.relative_to(tmp_path))
    assert snap_compare(app, terminal_size=(80, 24), run_before=show("card"))
