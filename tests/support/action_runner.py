"""action.yml run as a GitHub runner runs a composite action, without GitHub.

Each step in order: its ``if:`` evaluated, its ``env:`` with ``${{ inputs.* }}`` and
``${{ steps.*.outputs.* }}`` substituted (the inputs' defaults filled in, as GitHub
does), its ``run:`` script written to a file and run with ``bash --noprofile --norc -eo
pipefail`` (GitHub's ``shell: bash``) in the checkout, with a fresh ``GITHUB_OUTPUT``
file read back into the step's outputs, and ``GITHUB_STEP_SUMMARY``, ``GITHUB_ACTIONS``,
``GITHUB_WORKSPACE``, ``GITHUB_ACTION_PATH``, ``RUNNER_TEMP``, ``RUNNER_OS`` set.

Two things are not run, and are recorded as such: ``uses:`` steps (actions/cache is
GitHub's; the caches' effect is shown by running twice with one ``HF_HOME``), and the
install step, replaced by a venv ``model-release`` that runs this checkout's code with
the Python running the tests (installing needs the network).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ACTION = Path(__file__).resolve().parents[2] / "action.yml"
INSTALL_STEP = "Install model-release"
_EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


@dataclass
class ActionRun:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    """The action's outputs (action.yml's ``outputs:``), as a workflow sees them."""
    summary: str
    steps: dict[str, str] = field(default_factory=dict)
    """Each step's name -> "ran", "skipped" (its ``if:`` was false), "not run" (uses:),
    "replaced" (the install) or "failed"."""
    step_outputs: dict[str, dict[str, str]] = field(default_factory=dict)


def read_outputs(path: Path) -> dict[str, str]:
    """A GITHUB_OUTPUT file: ``name=value`` lines and ``name<<DELIMITER`` heredocs."""
    outputs: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)
            outputs[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
            continue
        name, _, value = line.partition("=")
        outputs[name] = value
        index += 1
    return outputs


class _Context:
    def __init__(self, inputs: dict[str, str]) -> None:
        self.inputs = inputs
        self.steps: dict[str, dict[str, str]] = {}

    def value(self, expression: str) -> str:
        """``inputs.NAME`` or ``steps.ID.outputs.NAME`` (missing ones are '', as on GitHub)."""
        parts = expression.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            return self.inputs.get(parts[1], "")
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            return self.steps.get(parts[1], {}).get(parts[3], "")
        raise AssertionError(f"the test runner does not evaluate {expression!r}")

    def substitute(self, text: str) -> str:
        return _EXPRESSION.sub(lambda match: self.value(match[1]), text)

    def condition(self, expression: str) -> bool:
        """``A == 'x'`` / ``A != 'x'``: the only forms action.yml uses in ``if:``."""
        match = re.fullmatch(r"\s*([\w.-]+)\s*(==|!=)\s*'([^']*)'\s*", expression)
        assert match, f"the test runner does not evaluate if: {expression!r}"
        equal = self.value(match[1]) == match[3]
        return equal if match[2] == "==" else not equal


def run_action(
    checkout: Path, runner_temp: Path, inputs: dict[str, str], env: dict[str, str] | None = None
) -> ActionRun:
    """Run action.yml's steps for a workflow that gave ``inputs``, in ``checkout``."""
    action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    defaults = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    unknown = set(inputs) - set(defaults)
    assert not unknown, f"action.yml has no input {sorted(unknown)}"
    context = _Context(defaults | inputs)
    summary = runner_temp / "step_summary.md"
    runner_temp.mkdir(parents=True, exist_ok=True)
    base_env = {
        **os.environ,
        **(env or {}),
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(checkout),
        "GITHUB_ACTION_PATH": str(ACTION.parent),
        "GITHUB_STEP_SUMMARY": str(summary),
        "RUNNER_TEMP": str(runner_temp),
        "RUNNER_OS": "Linux",
        "RUNNER_ARCH": "X64",
    }
    run = ActionRun(0, "", "", {}, "")
    for index, step in enumerate(action["runs"]["steps"]):
        name = step.get("name") or step.get("uses") or f"step {index}"
        if "if" in step and not context.condition(step["if"]):
            run.steps[name] = "skipped"
            continue
        if "uses" in step:
            run.steps[name] = "not run"
            continue
        if name == INSTALL_STEP:
            _install(runner_temp)
            run.steps[name] = "replaced"
            continue
        output = runner_temp / f"output-{index}"
        script = runner_temp / f"step-{index}.sh"
        script.write_text(step["run"], encoding="utf-8")
        step_env = base_env | {"GITHUB_OUTPUT": str(output)}
        step_env |= {key: context.substitute(str(value)) for key, value in step["env"].items()}
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=checkout,
            env=step_env,
            capture_output=True,
            text=True,
        )
        run.stdout += done.stdout
        run.stderr += done.stderr
        if "id" in step:
            context.steps[step["id"]] = run.step_outputs[step["id"]] = read_outputs(output)
        if done.returncode != 0:
            run.returncode = done.returncode
            run.steps[name] = "failed"
            break
        run.steps[name] = "ran"
    run.outputs = {
        name: context.substitute(spec["value"]) for name, spec in action["outputs"].items()
    }
    run.summary = summary.read_text(encoding="utf-8") if summary.exists() else ""
    return run


def _install(runner_temp: Path) -> None:
    """The venv the install step makes, its ``model-release`` running this checkout's
    code with this Python (whatever else is installed under that name)."""
    venv_bin = runner_temp / "model-release-venv" / "bin"
    venv_bin.mkdir(parents=True, exist_ok=True)
    command = venv_bin / "model-release"
    command.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="{ACTION.parent}${{PYTHONPATH:+:$PYTHONPATH}}" exec "{sys.executable}" '
        '-c "import sys; from release.cli import main; sys.exit(main())" "$@"\n',
        encoding="utf-8",
    )
    command.chmod(0o755)
