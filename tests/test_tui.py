"""The release wizard, driven with Textual's pilot on tiny real models.

The wizard holds no pipeline logic, so these tests check what it makes the pipeline do:
the manifest, release.yaml and the files of each stage, and what the screen shows.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from textual.widgets import ContentSwitcher, Input, Static

from release.manifest import MANIFEST_NAME, Manifest
from release.tui.app import make_wizard
from tests.lora_models import make_adapter

SIZE = (100, 30)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def tiny_adapter(tiny_llama_dir, tmp_path_factory) -> Path:
    return make_adapter(
        tiny_llama_dir, tmp_path_factory.mktemp("wizard") / "adapter", target_modules=["q_proj"]
    )


async def settle(app, pilot) -> None:
    """Let the run worker finish and its last messages arrive."""
    await app.workers.wait_for_complete()
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def text_of(app, selector: str) -> str:
    """What a Static shows, as plain text."""
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(app.screen.query_one(selector, Static).content)
    return console.export_text()


def shown_step(app) -> str:
    return app.screen.query_one(ContentSwitcher).current.removeprefix("pane-")


async def test_intake_from_an_adapter_folder_saves_the_spec(tmp_path, tiny_adapter, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_wizard(tiny_adapter)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
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
