"""`run --json` / `push --json`: one JSON object per runner event per line, redacted.

A real run's stream is read by tests/test_kill_resume.py, which parses every line."""

from __future__ import annotations

import json

from release.cli import main
from release.core.errors import StageError
from release.core.events import (
    Log,
    Progress,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from release.report.console import JsonLinesPrinter

TOKEN = "hf_JSONcanaryQ7xZ3kW9pR2mAbCdEf"


def test_each_event_is_one_redacted_json_line(monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    failure = StageError("push", f"the Hub echoed {TOKEN}", hint="rerun the push")
    events = [
        StageStarted("merge", "Merge"),
        Progress("merge", 512, 1024, "bytes", "model.norm.weight"),
        Log("merge", f"token {TOKEN} in a message", "warning"),
        StageFinished("merge", 1.5, {"shards": 2, "echo": TOKEN}),
        StageSkipped("gguf", "gguf.types is empty"),
        StageFailed("push", failure),
    ]
    with JsonLinesPrinter() as printer:
        for event in events:
            printer.show(event)
    out = capsys.readouterr().out
    assert TOKEN not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines == [
        {"type": "stage_started", "stage": "merge", "title": "Merge"},
        {
            "type": "progress",
            "stage": "merge",
            "done": 512,
            "total": 1024,
            "unit": "bytes",
            "message": "model.norm.weight",
        },
        {"type": "log", "stage": "merge", "level": "warning", "message": "token *** in a message"},
        {
            "type": "stage_finished",
            "stage": "merge",
            "seconds": 1.5,
            "facts": {"shards": 2, "echo": "***"},
        },
        {"type": "stage_skipped", "stage": "gguf", "reason": "gguf.types is empty"},
        {
            "type": "stage_failed",
            "stage": "push",
            "error": "error: push: the Hub echoed *** (rerun the push)",
        },
    ]


def test_json_with_dry_run_is_refused(tmp_path, capsys):
    for command in ("run", "push"):
        assert main([command, "--json", "--dry-run", str(tmp_path / "release.yaml")]) == 2
        err = capsys.readouterr().err
        assert "--json with --dry-run" in err


def test_a_token_json_would_escape_is_redacted_too(monkeypatch, capsys):
    token = 'my"odd\\token'
    monkeypatch.setenv("HF_TOKEN", token)
    with JsonLinesPrinter() as printer:
        printer.show(Log("push", f"sent {token}"))
    line = capsys.readouterr().out
    assert json.loads(line)["message"] == "sent ***"
    assert json.dumps(token)[1:-1] not in line


def test_a_failed_run_prints_only_json_lines_even_in_github_actions(tmp_path, monkeypatch, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    spec = tmp_path / "release.yaml"
    spec.write_text("name: t\nversion: 1.0.0\nbase:\n  repo_id: a/b\nadapter:\n  path: adapter\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))

    assert main(["run", "--json", str(spec)]) == 2
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.out.splitlines()]
    assert [(e["type"], e["stage"]) for e in events] == [
        ("stage_started", "adapter"),
        ("stage_failed", "adapter"),
    ]
    assert events[-1]["error"].startswith("error: ") and "\n" not in events[-1]["error"]
    assert events[-1]["error"] in captured.err


def test_a_non_finite_fact_is_null_not_nan(capsys):
    with JsonLinesPrinter() as printer:
        printer.show(StageFinished("evaluate", 1.0, {"ratio": float("nan"), "top": float("inf")}))

    def refuse(constant: str):
        raise AssertionError(f"{constant} is not JSON")

    line = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert line["facts"] == {"ratio": None, "top": None}
