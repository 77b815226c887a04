"""The children the release starts import this project, whatever folder the user runs in."""

from __future__ import annotations

import subprocess

import pytest

from release.core.child_python import PYTHON


@pytest.fixture
def shadowing_folder(tmp_path, monkeypatch):
    """A working folder as users have them: a workspace called ``release``, card
    templates in ``cards/``; each a namespace package to ``python -m`` run from here."""
    for name in ("release", "cards", "release/gguf"):
        (tmp_path / name).mkdir(exist_ok=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "module", ["release.gguf.llama_cpp_process", "release.gguf.reference_process"]
)
def test_the_gguf_stage_children_start_in_a_folder_holding_release(shadowing_folder, module):
    """Both answer JSON lines until their input ends; started from a folder holding
    ``release/`` they failed at their import ("No module named ...")."""
    done = subprocess.run(
        [*PYTHON, "-m", module], stdin=subprocess.DEVNULL, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
