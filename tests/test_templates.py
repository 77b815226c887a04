"""The top-level templates package: every file in it ships in the wheel."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import templates

ROOT = Path(__file__).parents[1]


def test_every_template_is_package_data_of_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "templates" in setuptools["packages"]["find"]["include"]
    patterns = setuptools["package-data"]["templates"]
    files = sorted(p.name for p in templates.FOLDER.iterdir() if p.suffix != ".py" and p.is_file())
    assert {"model_card.md.j2", "gguf_card.md.j2", "starter-release.yaml"} <= set(files)
    assert "release-workflow.yml" in files
    assert [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)] == []
