"""The children the release starts import this project, whatever folder the user runs in."""

from __future__ import annotations

import subprocess

import pytest

import release
from release.core.child_python import PROJECT_ROOT, PYTHON, project_env


@pytest.fixture
def shadowing_folder(tmp_path, monkeypatch):
    """A working folder as users have them: a workspace called ``release``, card
    templates in ``cards/``; each a namespace package to ``python -m`` run from here."""
    for name in ("release/gguf", "cards"):
        (tmp_path / name).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "module", ["release.gguf.llama_cpp_process", "release.gguf.reference_process"]
)
def test_the_gguf_stage_children_start_in_a_folder_holding_release(shadowing_folder, module):
    """Both answer JSON lines until their input ends; started from a folder holding
    ``release/`` they failed at their import ("No module named ...")."""
    done = subprocess.run(
        [*PYTHON, "-m", module],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=project_env(),
    )

    assert done.returncode == 0, done.stderr


def test_a_child_imports_the_project_its_parent_runs(shadowing_folder):
    """Not the folder in the working directory, and not another installed copy: the
    same files as this process (a checkout run in place)."""
    done = subprocess.run(
        [*PYTHON, "-c", "import release, cards; print(release.__file__); print(cards.__file__)"],
        capture_output=True,
        text=True,
        env=project_env({"PYTHONPATH": "/elsewhere"}),
        check=True,
    )

    assert done.stdout.split() == [release.__file__, str(PROJECT_ROOT / "cards" / "__init__.py")]
