"""Saving a changed spec edits the person's release.yaml instead of rewriting it.

Each test reads the saved text back with PyYAML through ``load_spec`` (what the CLI
runs) and compares the lines with the original: only the changed settings move.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
import yaml

from release.spec.editor import spec_text
from release.spec.schema import ReleaseSpec, load_spec, parse_spec
from release.spec.starter import starter_spec

HAND_WRITTEN = """\
# Our release. Keep the base pinned!
name: tiny-chat
version: "1.0.0"

base:
  repo_id: HuggingFaceTB/SmolLM2-135M-Instruct   # the identity on the card
  path: ./base

adapter:
  path: ./adapter

gguf:
  types: [f16]  # small first

card:
  summary: >-
    A tiny model, folded over
    two lines.
  license: apache-2.0
  language:
    - en
    - fr
  tags:
    - lora
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    for folder in ("base", "adapter"):
        (tmp_path / folder).mkdir()
    path = tmp_path / "release.yaml"
    path.write_text(HAND_WRITTEN)
    return path


def changed(spec: ReleaseSpec, path: Path, **sections: dict) -> ReleaseSpec:
    data = spec.model_dump(exclude_defaults=True)
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return ReleaseSpec.model_validate(data, context={"base_dir": path.parent})


def save(spec: ReleaseSpec, path: Path) -> list[str]:
    """Save ``spec`` and return the diff's changed lines (+/-) against the old text."""
    old = path.read_text()
    path.write_text(spec_text(spec, path))
    assert load_spec(path).model_dump() == spec.model_dump()
    diff = difflib.unified_diff(old.splitlines(), path.read_text().splitlines(), n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def test_an_unchanged_spec_saves_the_same_bytes(spec_path):
    spec = load_spec(spec_path)
    assert spec_text(spec, spec_path) == HAND_WRITTEN


def test_a_changed_value_is_the_only_changed_line(spec_path):
    spec = load_spec(spec_path)
    assert save(changed(spec, spec_path, card={"license": "mit"}), spec_path) == [
        "-  license: apache-2.0",
        "+  license: mit",
    ]


def test_a_flow_list_stays_a_flow_list_and_keeps_its_comment(spec_path):
    spec = load_spec(spec_path)
    lines = save(changed(spec, spec_path, gguf={"types": ["f16", "q8_0"]}), spec_path)
    # ruamel keeps the comment's column; a longer value pushes it one space right
    assert lines == ["-  types: [f16]  # small first", "+  types: [f16, q8_0] # small first"]


def test_a_block_list_keeps_its_indentation(spec_path):
    spec = load_spec(spec_path)
    lines = save(changed(spec, spec_path, card={"language": ["en", "fr", "de"]}), spec_path)
    assert lines == ["+    - de"]


def test_a_new_section_is_added_and_every_comment_stays(spec_path):
    spec = load_spec(spec_path)
    new = changed(spec, spec_path, push={"repo_id": "me/tiny-chat", "private": True})
    lines = save(new, spec_path)
    assert lines == ["+", "+push:", "+  repo_id: me/tiny-chat", "+  private: true"]
    text = spec_path.read_text()
    for line in HAND_WRITTEN.splitlines():
        assert line in text
    assert yaml.safe_load(text)["push"] == {"repo_id": "me/tiny-chat", "private": True}


def test_a_folded_paragraph_stays_folded(spec_path):
    spec = load_spec(spec_path)
    new = changed(spec, spec_path, card={"summary": "A tiny model, rewritten."})
    assert save(new, spec_path) == [
        "-    A tiny model, folded over",
        "-    two lines.",
        "+    A tiny model, rewritten.",
    ]


def test_a_path_that_did_not_change_keeps_its_spelling(spec_path, tmp_path):
    (tmp_path / "adapter2").mkdir()
    spec = load_spec(spec_path)
    lines = save(changed(spec, spec_path, adapter={"path": tmp_path / "adapter2"}), spec_path)
    assert lines == ["-  path: ./adapter", "+  path: adapter2"]
    assert "  path: ./base\n" in spec_path.read_text()


def test_the_starter_spec_keeps_its_comments_on_first_save(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        '{"peft_type": "LORA", "r": 4, "lora_alpha": 8, '
        '"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct"}'
    )
    path = tmp_path / "release.yaml"
    starter = starter_spec(adapter, path)
    spec = changed(parse_spec(starter, path), path, card={"summary": "Answers in French."})
    text = spec_text(spec, path, unsaved_text=starter)
    assert [line for line in starter.splitlines() if "summary" not in line] == [
        line for line in text.splitlines() if "summary" not in line
    ]
    summary = '  summary: "Answers in French." # one paragraph: what this model is and does'
    assert summary in text.splitlines()  # the starter's quotes and comment stay


def test_an_unreadable_old_file_gives_a_fresh_file(spec_path):
    spec = load_spec(spec_path)
    spec_path.write_text("name: [unclosed\n")
    text = spec_text(spec, spec_path)
    assert text == spec.to_yaml(spec_path.parent)


def test_a_long_line_that_did_not_change_is_not_wrapped(spec_path):
    summary = "  summary: " + " ".join(["A long plain summary line"] * 5)
    folded = "  summary: >-\n    A tiny model, folded over\n    two lines."
    text = HAND_WRITTEN.replace(folded, summary)
    assert len(summary) > 100 and summary in text
    spec_path.write_text(text)
    spec = load_spec(spec_path)
    assert save(changed(spec, spec_path, card={"license": "mit"}), spec_path) == [
        "-  license: apache-2.0",
        "+  license: mit",
    ]


def test_a_cleared_setting_loses_its_line(spec_path):
    spec = load_spec(spec_path)
    assert save(changed(spec, spec_path, base={"path": None}), spec_path) == ["-  path: ./base"]
