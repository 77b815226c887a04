"""The built-in demo as fixtures: a demo folder (release.yaml, the trained LoRA, its
stored scores) and the release the CLI makes of it.

The demo's adapter and scores come from the session's cached SmolLM2 LoRA rather than
being retrained, so a folder costs a copy. ``demo_release`` runs `model-release run` once
per session, as a user runs it (a process of its own, its terminal output kept); the
tests that read it must not change it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from release.demo import build_demo
from tests.support.cache_lock import building
from tests.support.cli_process import run_cli


def make_demo_folder(folder: Path, adapter_dir: Path) -> Path:
    """A demo folder around the cached ``adapter_dir``; returns its release.yaml."""
    shutil.copytree(adapter_dir, folder / "adapter")
    with building(adapter_dir.with_name(f"{adapter_dir.name}-scores.yaml")) as scores:
        if scores.is_file():  # the demo's own eval of that adapter, also cached
            (folder / "results").mkdir()
            shutil.copyfile(scores, folder / "results" / "unit_conversions.yaml")
        spec_path = build_demo(folder)
        shutil.copyfile(folder / "results" / "unit_conversions.yaml", scores)
    return spec_path


@dataclass(frozen=True)
class DemoRun:
    folder: Path
    output: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def demo_release_run(smollm2_adapter_dir, tmp_path_factory) -> DemoRun:
    """`model-release run` of the demo folder (about two minutes on two cores)."""
    folder = tmp_path_factory.mktemp("demo")
    output = run_cli("run", str(make_demo_folder(folder, smollm2_adapter_dir)))
    assert output.returncode == 0, output.stdout + output.stderr
    return DemoRun(folder, output)


@pytest.fixture(scope="session")
def demo_release(demo_release_run) -> Path:
    """The demo folder after its release by the CLI."""
    return demo_release_run.folder
