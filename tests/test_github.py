"""The CLI in GitHub Actions: job summary, annotations, step outputs, the tag check.

Runs `model-release run --stage push` on a built release against the local Hub with
GITHUB_ACTIONS=true and temporary GITHUB_STEP_SUMMARY / GITHUB_OUTPUT files, as a
runner would, and reads back what a runner would read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cards.lint import Problem
from release.cli import main
from release.core.manifest import Manifest
from release.report.github import command, emit_check_results
from tests.support.hub_fixtures import CANARY_TOKEN, MODEL_CARD, REPO_ID, BuiltRelease

HARNESS = {"harness": "lm-evaluation-harness", "source": "results.json"}
EVALUATE_FACTS = {  # as the evaluate stage records them
    "results": [
        {"task": "arc_easy", "metric": "acc", "value": 0.7348, "stderr": 0.0091, "n_shot": 0}
        | HARNESS,
        {"task": "gsm8k", "metric": "exact_match", "value": 0.31, "n_shot": 5} | HARNESS,
    ],
    "gate": {
        "passed": True,
        "compared": [
            {
                "task": "arc_easy",
                "metric": "acc",
                "previous": 0.75,
                "current": 0.7348,
                "drop": 0.02,
            }
        ],
        "failures": [],
        "warnings": ["arc_easy acc 0.75 → 0.7348 (-2%)"],
        "flagged": [],
    },
}


@pytest.fixture
def actions(tmp_path, monkeypatch) -> dict[str, Path]:
    """A GitHub runner's environment: its files, with the checkout at tmp_path."""
    files = {"summary": tmp_path / "step_summary.md", "output": tmp_path / "github_output"}
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(files["summary"]))
    monkeypatch.setenv("GITHUB_OUTPUT", str(files["output"]))
    return files


def with_card(release: BuiltRelease, text: str) -> Path:
    """Replace the model card and the evaluate facts, recorded as the stages would; returns
    the spec file."""
    card = release.workspace / "card" / "README.md"
    card.write_text(text)
    manifest = release.manifest()
    record = manifest.stages["card"]
    record.outputs = [
        manifest.record(card, relative_to=release.workspace) if o.path == "card/README.md" else o
        for o in record.outputs
    ]
    manifest.stages["evaluate"].facts = EVALUATE_FACTS
    manifest.save(release.manifest_path)
    spec_path = release.workspace.parent / "release.yaml"
    spec_path.write_text(release.spec.to_yaml(spec_path.parent))
    return spec_path


FIRST_NOTES = "## tiny-chat 1.0.0\n\nThe first release: no earlier release to compare with."


def read_outputs(path: Path) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT's `name<<DELIMITER` blocks as the runner does."""
    lines, outputs = path.read_text().splitlines(), {}
    while lines:
        name, delimiter = lines.pop(0).split("<<")
        end = lines.index(delimiter)
        outputs[name], lines = "\n".join(lines[:end]), lines[end + 1 :]
    return outputs


def line_of(text: str, prefix: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(prefix))


def test_run_in_actions_writes_summary_annotations_and_outputs(hub, built_release, actions, capsys):
    from huggingface_hub import HfApi

    text = MODEL_CARD.replace("license: apache-2.0", "licence: apache-2.0\nlicense: apache-2.0")
    spec_path = with_card(built_release, text)

    code = main(["run", str(spec_path), "--stage", "push", "--expect-version", "v1.0.0"])

    out = capsys.readouterr().out
    assert code == 0, out
    # An annotation on the card's file and line (relative to the checkout).
    assert (
        f"::warning file=build/card/README.md,line={line_of(text, 'licence:')},"
        "title=model card::unknown key 'licence'; did you mean 'license'?"
    ) in out.splitlines()

    assert not any(line.startswith("::warning title=push") for line in out.splitlines())
    summary = actions["summary"].read_text()
    assert summary.startswith("## model-release: tiny-chat v1.0.0\n")
    assert "| push | ✅ done |" in summary
    card = built_release.workspace / "card" / "README.md"
    assert f"- ⚠️ push: {card}:2: unknown key 'licence'; did you mean 'license'?\n" in summary
    assert "| arc_easy | acc | 0.7348 | 0.0091 | 0 | 0.75 | -2.0% |" in summary
    assert "| gsm8k | exact_match | 0.31 |  | 5 |  |  |" in summary
    assert "**Gate: ✅ passed**" in summary
    assert "- warning: arc_easy acc 0.75 → 0.7348 (-2%)" in summary
    assert "### Model card lint: warnings" in summary
    assert "| build/card/README.md | 2 | warning | unknown key 'licence'" in summary

    head = HfApi(endpoint=hub.url, token=CANARY_TOKEN).list_repo_refs(REPO_ID).branches[0]
    assert f"[{REPO_ID}]({hub.url}/{REPO_ID}) | committed | `{head.target_commit[:12]}` |" in (
        summary
    )
    outputs = read_outputs(actions["output"])
    assert outputs == {
        "model-url": f"{hub.url}/{REPO_ID}",
        "commit": head.target_commit,
        "card-lint": "warnings",
        "notes": FIRST_NOTES,
    }
    assert summary.endswith(f"\n{FIRST_NOTES}\n")
    assert CANARY_TOKEN not in summary + out + actions["output"].read_text()


def test_failed_run_still_writes_its_summary_and_an_error_per_problem(
    hub, built_release, actions, capsys
):
    text = MODEL_CARD.replace("license: apache-2.0", "license: apache2")
    spec_path = with_card(built_release, text)

    assert main(["run", str(spec_path), "--stage", "push"]) == 1

    lines = capsys.readouterr().out.splitlines()
    line = line_of(text, "license:")
    annotation = f"::error file=build/card/README.md,line={line},title=model card::"
    assert f"{annotation}license: 'apache2' is not a Hub license id; use one from " in "\n".join(
        lines
    )
    assert any(x.startswith("::error title=push failed::push: the card has errors") for x in lines)
    summary = actions["summary"].read_text()
    assert "| push | ❌ failed: push: the card has errors, nothing was pushed" in summary
    assert "### Model card lint: errors" in summary
    assert read_outputs(actions["output"]) == {"card-lint": "errors", "notes": FIRST_NOTES}
    assert not hub.calls("commit")


def test_outside_actions_nothing_is_written(hub, built_release, actions, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_ACTIONS", "false")
    spec_path = with_card(built_release, MODEL_CARD)
    assert main(["run", str(spec_path), "--stage", "push"]) == 0
    assert "::" not in capsys.readouterr().out
    assert not actions["summary"].exists() and not actions["output"].exists()


def test_expect_version_refuses_another_tag_before_running(built_release, tmp_path, capsys):
    spec_path = with_card(built_release, MODEL_CARD)
    before = Manifest.load(built_release.manifest_path)

    assert main(["run", str(spec_path), "--expect-version", "v1.1.0"]) == 2

    err = capsys.readouterr().err
    assert f"{spec_path}: version is 1.0.0 but the tag is v1.1.0" in err
    assert Manifest.load(built_release.manifest_path) == before


def test_workflow_commands_escape_like_actions_toolkit():
    # actions/toolkit command.ts: data escapes % CR LF; properties also ':' and ','.
    assert (
        command("error", "50% done\r\nnext", file="a,b:c.md", line=3, title="t")
        == "::error file=a%2Cb%3Ac.md,line=3,title=t::50%25 done%0D%0Anext"
    )
    assert command("notice", "plain") == "::notice::plain"


def test_card_check_results_for_actions(actions, capsys):
    problems = [Problem("a/README.md", 4, "error", "license: 'x' is not a Hub license id")]
    emit_check_results([Path("a/README.md"), Path("b/README.md")], problems)
    assert capsys.readouterr().out.splitlines() == [
        "::error file=a/README.md,line=4,title=model card::license: 'x' is not a Hub license id"
    ]
    summary = actions["summary"].read_text()
    assert "| a/README.md | 4 | error | license: 'x' is not a Hub license id |" in summary
    assert read_outputs(actions["output"]) == {"card-lint": "errors"}
