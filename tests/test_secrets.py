"""HF_TOKEN never leaves the process: not in what the CLI or the wizard prints, not in any
file a release writes (workspace, GGUF metadata, cards, manifest, spec folder, the job
report of GitHub Actions, HF_HOME), not in what the Hub stores.

The token is a canary, random per run, in two shapes: Hub-like (``hf_`` + 34) and a
plain 40-character string, which only the literal HF_TOKEN replacement can hide. The
failing cases use a Hub that echoes the token back in its error body, its error header
and a URL, so the error messages carry it, with and without --debug.
"""

from __future__ import annotations

import html
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from release.cli import main
from tests.support.hub_server import FakeHub
from tests.support.secret_scan import Scan, random_token

CARD_YAML = Path(__file__).parent / "cards_samples" / "demo" / "card.yaml"
CANARIES = {"hub-shaped": ("hf_", 37), "plain": ("", 40)}
SIZE = (100, 30)


def canary(shape: str) -> str:
    prefix, length = CANARIES[shape]
    return random_token(prefix, length)


@pytest.fixture(scope="module")
def adapter(tiny_adapter) -> Path:
    """The session's q_proj LoRA (the releases refer to it and write beside it)."""
    return tiny_adapter


def release_spec(root: Path, base: Path, adapter: Path) -> Path:
    """The wizard tests' tiny release (eval off), with a GGUF and both repos to push."""
    from tests.test_tui import write_spec

    push = {"repo_id": "tester/tiny-chat", "gguf_repo_id": "tester/tiny-chat-GGUF"}
    return write_spec(root, base, adapter, gguf={"types": ["q8_0"]}, push=push)


def in_github_actions(root: Path, monkeypatch) -> list[Path]:
    """Turn on the job report (step summary, outputs), to scan what it writes."""
    files = [root / "step_summary.md", root / "output.txt"]
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files[0]))
    monkeypatch.setenv("GITHUB_OUTPUT", str(files[1]))
    return files


def test_a_whole_release_and_every_command_leak_no_token(
    tmp_path, tiny_llama_dir, adapter, monkeypatch, capfd, caplog
):
    token = canary("plain")
    release = tmp_path / "release"
    release.mkdir()
    spec = release_spec(release, tiny_llama_dir, adapter)
    workspace = release / "build"
    gh = tmp_path / "gh"
    gh.mkdir()
    in_github_actions(gh, monkeypatch)
    scan = Scan(token)
    with FakeHub(tmp_path / "hub", token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", token)
        commands = [
            ["run", str(spec)],
            ["status", str(spec)],
            ["push", str(spec), "--dry-run"],
            ["push", str(spec)],
            ["spec", "check", str(spec)],
            ["card", "check", str(workspace / "card" / "README.md")],
            ["card", "build", "--metadata", str(CARD_YAML), "--output", str(tmp_path / "c.md")],
        ]
        for argv in commands:
            code = main(argv)
            out, err = capfd.readouterr()
            assert code == 0, (argv, err)
            scan.text(f"{argv[:2]} stdout", out)
            scan.text(f"{argv[:2]} stderr", err)
        assert {r.authorization for r in hub.calls("commit")} == {f"Bearer {token}"}
    scan.text("logging", caplog.text)
    scan.files(release, gh, tmp_path / "hub", Path(os.environ["HF_HOME"]))

    assert scan.leaks == []
    assert len(list((workspace / "gguf").glob("*.gguf"))) == 1
    assert scan.outputs > 50  # every file of the workspace and the hub, GGUF keys included


class _EchoingHub(BaseHTTPRequestHandler):
    """A Hub at its worst: every request refused, the credentials echoed back in the
    error body, the error header and a URL."""

    status = 401

    def _refuse(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        auth = self.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ")
        message = f"Invalid credentials {auth!r}; see https://hub.test/login?token={token}"
        body = json.dumps({"error": message, "url": self.path + f"?token={token}"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_HEAD = _refuse

    def log_message(self, format: str, *args) -> None:
        """Quiet."""


@pytest.fixture
def echoing_hub(monkeypatch, request):
    handler = type("Handler", (_EchoingHub,), {"status": request.param})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    yield request.param
    server.shutdown()
    server.server_close()


def built_spec(built_release, folder: Path) -> Path:
    from release.spec.schema import load_spec
    from tests.support.tui_workspace import record_current_keys

    path = folder / "release.yaml"
    path.write_text(built_release.spec.to_yaml(folder))
    record_current_keys(load_spec(path))
    return path


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("shape", list(CANARIES))
@pytest.mark.parametrize("echoing_hub", [401, 403], indirect=True)
def test_a_refusal_that_echoes_the_token_is_redacted(
    echoing_hub, shape, debug, built_release, tmp_path, monkeypatch, capfd, caplog
):
    token = canary(shape)
    monkeypatch.setenv("HF_TOKEN", token)
    spec = built_spec(built_release, tmp_path)
    gh_files = in_github_actions(tmp_path, monkeypatch)

    code = main([*(["--debug"] if debug else []), "push", str(spec)])

    out, err = capfd.readouterr()
    assert code == 1, err
    assert "could not create the repo" in err and "***" in err
    assert ("Traceback" in err) == debug
    scan = Scan(token)
    scan.text("stdout", out)
    scan.text("stderr", err)
    scan.text("logging", caplog.text)
    scan.files(built_release.workspace, *gh_files, Path(os.environ["HF_HOME"]))
    assert scan.leaks == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("echoing_hub", [401], indirect=True)
async def test_the_wizard_shows_no_token_on_any_screen(
    echoing_hub, built_release, tmp_path, monkeypatch
):
    from release.tui.app import make_wizard

    token = canary("plain")
    monkeypatch.setenv("HF_TOKEN", token)
    spec = built_spec(built_release, tmp_path)
    scan = Scan(token)
    app = make_wizard(spec)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        for step in ("adapter", "merge", "evaluate", "gguf", "card", "push"):
            app.screen.show_step(step)
            await pilot.pause()
            scan.text(f"screen {step}", app.export_screenshot())
        await pilot.press("ctrl+r")  # push: the Hub refuses and echoes the token
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        shown = app.export_screenshot()
        scan.text("screen push failed", shown)
    text = html.unescape(re.sub(r"<[^>]+>", "", shown)).replace("\xa0", " ")
    assert "could not create the repo" in text and "'Bearer ***'" in text  # the echo, hidden
    assert scan.leaks == []
