"""release.yaml: located errors, path resolution, the CLI's exit codes, `init`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from release.cli import main
from release.core.errors import SpecError
from release.spec.schema import load_spec, parse_size

GOOD = """\
name: tiny-release
version: 1.2.0
base:
  repo_id: HuggingFaceTB/SmolLM2-135M-Instruct
  path: models/base
adapter:
  path: adapter
merge:
  shard_size: 500MB
card:
  summary: A test.
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "release.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_good_spec_resolves_paths_against_its_folder(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.base.path == tmp_path / "models" / "base"
    assert (
        load_spec(write(tmp_path, GOOD.replace("path: adapter", "path: x/../adapter"))).adapter.path
        == spec.adapter.path
    )
    assert spec.adapter.path == tmp_path / "adapter"
    assert spec.workspace == tmp_path / "build"
    assert spec.merge.shard_size == 500_000_000
    assert spec.tag == "v1.2.0"
    assert spec.gguf.types == ["f16", "q8_0"]


def test_to_yaml_round_trips(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    text = spec.to_yaml(tmp_path)
    assert load_spec(write(tmp_path, text)) == spec
    data = yaml.safe_load(text)
    assert "eval" not in data  # defaults stay out of the file
    assert data["base"]["path"] == "models/base"  # paths as the user wrote them


def test_misspelt_key_and_wrong_type_are_both_reported_with_lines(tmp_path, capsys):
    path = write(
        tmp_path,
        GOOD.replace("  shard_size: 500MB", "  shard_sise: 500MB\n  dtype: float64")
        + "eval:\n  max_new_tokens: many\n",
    )
    assert main(["spec", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:9: merge.shard_sise: unknown key (did you mean 'shard_size'?)" in err
    assert f"{path}:10: merge.dtype: Input should be" in err
    assert f"{path}:14: eval.max_new_tokens: Input should be a valid integer" in err
    assert "Traceback" not in err


def test_every_problem_is_collected_not_just_the_first(tmp_path):
    path = write(tmp_path, "name: ../../etc\nversion: one\nbase: {}\nadapter: {}\nextra: 1\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    text = "\n".join(info.value.problems)
    assert ":1: name: '../../etc' cannot be a file or repo name" in text
    assert ":2: version: 'one' is not a version" in text
    assert ":3: base: give base.repo_id" in text
    assert ":4: adapter: give adapter.path (a local folder) or adapter.repo_id" in text
    assert ":5: extra: unknown key" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: [unclosed\n", ":2: not valid YAML.*started on line 1"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_not_a_spec(tmp_path, text, expected):
    with pytest.raises(SpecError, match=expected):
        load_spec(write(tmp_path, text))


def test_missing_file_exit_code_and_hint(tmp_path, capsys):
    assert main(["spec", "check", str(tmp_path / "nope.yaml")]) == 2
    assert "model-release init" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "expected"), [("2GB", 2 * 10**9), ("800MiB", 800 * 2**20), (1024, 1024)]
)
def test_sizes(value, expected):
    assert parse_size(value) == expected


def test_init_writes_a_spec_that_checks(tmp_path, capsys):
    adapter = tmp_path / "my-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        '{"peft_type": "LORA", "r": 8, "lora_alpha": 16,'
        ' "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}'
    )
    out = tmp_path / "release.yaml"
    assert main(["init", str(adapter), "--output", str(out)]) == 0
    spec = load_spec(out)
    assert spec.name == "my-adapter"
    assert spec.base.repo_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert spec.adapter.path == adapter
    assert "r=8, alpha=16" in out.read_text()
    assert main(["init", str(adapter), "--output", str(out)]) == 2  # never overwrites silently


def test_a_missing_card_template_is_refused_at_its_line(tmp_path, capsys):
    (tmp_path / "models" / "base").mkdir(parents=True)
    (tmp_path / "adapter").mkdir()
    path = write(tmp_path, GOOD + "  template: my_card.md.j2\n")
    assert main(["spec", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert f"{path}:12: card.template: {tmp_path / 'my_card.md.j2'} does not exist" in err[0]

    (tmp_path / "my_card.md.j2").write_text("# ours\n")
    assert main(["spec", "check", str(path)]) == 0
    assert load_spec(path).card.template_files() == [tmp_path / "my_card.md.j2"]


def test_a_missing_gguf_card_template_is_refused_at_its_line(tmp_path, capsys):
    """card.gguf_template as card.template: checked at its line; it and the .j2 files
    beside it (what it can include) are the card stage's inputs, each once."""
    (tmp_path / "models" / "base").mkdir(parents=True)
    (tmp_path / "adapter").mkdir()
    own = "  template: my_card.md.j2\n  gguf_template: my_gguf.md.j2\n"
    path = write(tmp_path, GOOD + own)
    (tmp_path / "my_card.md.j2").write_text("# ours\n")
    assert main(["spec", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert f"{path}:13: card.gguf_template: {tmp_path / 'my_gguf.md.j2'} does not exist" in err[0]

    (tmp_path / "my_gguf.md.j2").write_text('{% extends "model-release/gguf_card.md.j2" %}\n')
    assert main(["spec", "check", str(path)]) == 0
    assert load_spec(path).card.template_files() == [
        tmp_path / "my_card.md.j2",
        tmp_path / "my_gguf.md.j2",
    ]


def test_init_writes_a_recipe_for_several_inputs(tmp_path):
    """Several folders: a merge recipe of them (no adapter:), the base from the first
    adapter that names one; a folder name that is YAML markup stays a name."""
    folders = [tmp_path / "adapters" / "math", tmp_path / "adapters" / "a: {b}", tmp_path / "ft"]
    for folder in folders[:2]:
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(
            '{"peft_type": "LORA", "r": 8, "base_model_name_or_path": "org/base"}'
        )
    folders[2].mkdir()
    (folders[2] / "config.json").write_text("{}")
    out = tmp_path / "release.yaml"
    assert main(["init", *map(str, folders), "--output", str(out)]) == 0
    spec = load_spec(out)
    assert spec.adapter is None and spec.base.repo_id == "org/base"
    assert spec.name == "math-merge"
    step = spec.merge.recipe.steps[0]
    assert step.merge_method == "linear"
    assert [m.model for m in step.models] == ["adapters/math", "adapters/a: {b}", "ft"]
    assert all(m.parameters == {"weight": 1.0} for m in step.models)
    # the wizard's intake form, its adapter field left empty, keeps the recipe's release so
    from release.tui.session import Session

    edited = Session(out, spec).changed(adapter={}, name="renamed")
    assert edited.adapter is None and edited.merge.recipe == spec.merge.recipe
    assert main(["init", str(folders[0]), str(tmp_path), "-o", str(tmp_path / "x.yaml")]) == 2
    assert not (tmp_path / "x.yaml").exists()
