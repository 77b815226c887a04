"""`status` names why each stage would run again, for each way a stage goes stale: a
setting it reads (old -> new), an input file changed, new or gone, an output changed or
gone, a stage before it that runs again (issue #27 item 4).

The release is recorded as a run of its spec leaves it (each stage's key, keyed
settings, inputs and one output, in the runner's order), without running the stages:
the reasons come from the records and the spec alone, as they do for a real release
(tests/test_stage_keys.py runs one).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from release.cli import main
from release.core.manifest import MANIFEST_NAME, Manifest, StageRecord, now_iso
from release.runner import CONTENT_KEYED, keyed_settings, stage_key
from release.spec.schema import load_spec
from release.stages import default_stages

RESULTS = {
    "harness": "my-harness",
    "results": [{"task": "arc_easy", "metric": "acc", "value": 0.5, "dataset": "org/arc_easy"}],
}
SPEC = {
    "name": "tiny",
    "version": "1.0.0",
    "base": {"repo_id": "org/base", "path": "base"},
    "adapter": {"path": "adapter"},
    "eval": {
        "heldout_text": "heldout.txt",
        "results": ["results.yaml"],
        "contamination": {"training_data": ["train.jsonl"]},
    },
    "gguf": {"types": ["q8_0"]},
    "push": {"repo_id": "me/tiny"},
}


def record_as_run(spec_path: Path) -> None:
    """The manifest a run of the spec leaves, each stage with one output file."""
    spec = load_spec(spec_path)
    manifest = Manifest(name=spec.name, version=spec.version)
    for stage in default_stages():
        out = spec.workspace / stage.name / "out.txt"
        out.parent.mkdir(parents=True)
        out.write_text(f"what {stage.name} wrote")
        key, inputs = stage_key(stage, spec, manifest)
        manifest.stages[stage.name] = StageRecord(
            key=key,
            finished_at=now_iso(),
            seconds=1.0,
            inputs=inputs,
            outputs=[manifest.record(out, relative_to=spec.workspace)],
            settings=keyed_settings(stage, spec),
            facts={},
        )
    manifest.save(spec.workspace / MANIFEST_NAME)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recorded") / "release"
    (root / "adapter").mkdir(parents=True)
    (root / "adapter" / "adapter_config.json").write_text('{"r": 8}')
    (root / "adapter" / "adapter_model.safetensors").write_bytes(b"weights")
    (root / "base").mkdir()
    (root / "base" / "config.json").write_text('{"model_type": "llama"}')
    (root / "heldout.txt").write_text("Held-out text.")
    (root / "results.yaml").write_text(yaml.safe_dump(RESULTS))
    (root / "train.jsonl").write_text('{"text": "a training text"}\n')
    (root / "release.yaml").write_text(yaml.safe_dump(SPEC))
    record_as_run(root / "release.yaml")
    return root


def status(root: Path, capsys) -> dict[str, list[str]]:
    """`model-release status`: each stage's lines (its state, then why), by stage."""
    capsys.readouterr()
    assert main(["status", str(root / "release.yaml")]) == 0
    by_stage: dict[str, list[str]] = {}
    stage = ""
    for line in capsys.readouterr().out.splitlines():
        if line.startswith(" "):
            by_stage[stage].append(line.strip())
        elif not line.startswith("next:"):
            stage, shown = line.split(maxsplit=1)
            by_stage[stage] = [shown]
    return by_stage


def edit_spec(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        spec = yaml.safe_load((root / "release.yaml").read_text())
        change(spec)
        (root / "release.yaml").write_text(yaml.safe_dump(spec))

    return edit


def write(path: str, text: str) -> Callable[[Path], None]:
    return lambda root: (root / path).write_text(text)


def remove(path: str) -> Callable[[Path], None]:
    return lambda root: (root / path).unlink()


def setting(section: str, name: str, value) -> Callable[[Path], None]:
    return edit_spec(lambda spec: spec.setdefault(section, {}).__setitem__(name, value))


def contamination_share(spec: dict) -> None:
    spec["eval"]["contamination"]["max_share"] = 0.1


def own_gguf_template(root: Path) -> None:
    (root / "my_gguf.md.j2").write_text('{% extends "model-release/gguf_card.md.j2" %}\n')
    setting("card", "gguf_template", "my_gguf.md.j2")(root)


def hub_adapter(spec: dict) -> None:
    spec["adapter"] = {"repo_id": "me/lora", "revision": "v1"}


def previous_release(root: Path) -> None:
    """eval.previous names the last release's manifest: intake compares the base's
    fingerprint with the one it recorded."""
    (root / "previous.json").write_text('{"name": "tiny", "version": "0.9.0", "stages": {}}')
    edit_spec(lambda spec: spec["eval"].__setitem__("previous", ["previous.json"]))(root)


CASES = [
    # (stage, what changes, the line status shows under the stage)
    ("adapter", setting("adapter", "allow_pickle", True), "setting allow_pickle: false -> true"),
    (
        "adapter",
        write("adapter/adapter_config.json", '{"r": 16}'),
        "input adapter/adapter_config.json changed",
    ),
    ("adapter", write("adapter/README.md", "notes"), "input adapter/README.md is new"),
    (
        "adapter",
        remove("adapter/adapter_model.safetensors"),
        "input adapter/adapter_model.safetensors is gone",
    ),
    (
        "adapter",
        setting("base", "fingerprint", "ab" * 32),
        f'setting base.fingerprint: (unset) -> "{"ab" * 29}…',
    ),
    (
        "adapter",
        setting("base", "allow_fingerprint_mismatch", True),
        "setting base.allow_fingerprint_mismatch: false -> true",
    ),
    ("adapter", edit_spec(hub_adapter), 'setting adapter.revision: (unset) -> "v1"'),
    ("adapter", previous_release, "input previous.json is new"),
    ("adapter", write("build/adapter/out.txt", "edited"), "output adapter/out.txt changed"),
    ("adapter", remove("build/adapter/out.txt"), "output adapter/out.txt is gone"),
    ("merge", setting("merge", "shard_size", 1000), "setting shard_size: 2000000000 -> 1000"),
    ("merge", write("base/config.json", "{}"), "input base/config.json changed"),
    ("merge", write("build/merge/out.txt", "edited"), "output merge/out.txt changed"),
    ("merge", write("adapter/adapter_config.json", '{"r": 16}'), "adapter runs again"),
    (
        "contamination",
        edit_spec(contamination_share),
        "setting contamination.max_share: (unset) -> 0.1",
    ),
    ("contamination", write("train.jsonl", '{"text": "other"}\n'), "input train.jsonl changed"),
    (
        "contamination",
        remove("build/contamination/out.txt"),
        "output contamination/out.txt is gone",
    ),
    ("evaluate", setting("eval", "max_new_tokens", 7), "setting eval.max_new_tokens: 48 -> 7"),
    (
        "evaluate",
        setting("base", "trust_remote_code", True),
        "setting trust_remote_code: false -> true",
    ),
    ("evaluate", write("heldout.txt", "Other text."), "input heldout.txt changed"),
    ("evaluate", write("build/evaluate/out.txt", "edited"), "output evaluate/out.txt changed"),
    ("evaluate", setting("merge", "dtype", "float16"), "merge runs again"),
    # the GGUF header's general.repo_url is push.repo_id's (no push.gguf_repo_id)
    ("gguf", setting("push", "repo_id", "me/other"), 'setting repo_id: "me/tiny" -> "me/other"'),
    (
        "gguf",
        setting("gguf", "types", ["q8_0", "f16"]),
        'setting types: ["q8_0"] -> ["q8_0", "f16"]',
    ),
    ("gguf", write("build/gguf/out.txt", "edited"), "output gguf/out.txt changed"),
    ("gguf", setting("merge", "dtype", "float16"), "merge runs again"),
    ("card", setting("card", "summary", "new"), 'setting card.summary: "" -> "new"'),
    (
        "card",
        own_gguf_template,
        f'setting card.gguf_template: (unset) -> "{CONTENT_KEYED}"',
    ),
    ("card", own_gguf_template, "input my_gguf.md.j2 is new"),
    (
        "card",
        write("results.yaml", yaml.safe_dump({**RESULTS, "harness": "h2"})),
        "input results.yaml changed",
    ),
    ("card", remove("build/card/out.txt"), "output card/out.txt is gone"),
    ("card", setting("eval", "max_new_tokens", 7), "evaluate runs again"),
    ("push", setting("push", "private", True), "setting private: false -> true"),
    ("push", setting("push", "create_pr", True), "setting create_pr: false -> true"),
    ("push", setting("push", "tag", False), "setting tag: true -> false"),
    ("push", setting("eval", "enabled", False), "setting eval.enabled: (unset) -> false"),
    ("push", setting("eval", "max_task_drop", 0.1), "setting eval.max_task_drop: (unset) -> 0.1"),
    ("push", write("build/push/out.txt", "edited"), "output push/out.txt changed"),
    ("push", setting("card", "summary", "new"), "card runs again"),
]


@pytest.mark.parametrize(
    ("stage", "change", "line"), CASES, ids=[f"{stage}: {line}" for stage, _, line in CASES]
)
def test_status_names_the_change(recorded, tmp_path, capsys, stage, change, line):
    root = tmp_path / "release"
    shutil.copytree(recorded, root)
    assert all(lines[0].startswith("done") for lines in status(root, capsys).values())
    change(root)
    shown = status(root, capsys)
    assert shown[stage][0].startswith("changed since"), shown
    assert line in shown[stage][1:], shown[stage]


def test_a_stage_reads_no_setting_of_another_stage(recorded, tmp_path, capsys):
    """The contamination check's settings are its stage's alone: the evaluate stage's
    settings object leaves them out; the card's summary is not the GGUF stage's."""
    root = tmp_path / "release"
    shutil.copytree(recorded, root)
    edit_spec(contamination_share)(root)
    setting("card", "summary", "new")(root)
    shown = status(root, capsys)
    changed = {name for name, lines in shown.items() if lines[0].startswith("changed")}
    assert changed == {"contamination", "card", "push"}, shown


def test_push_repo_id_is_the_gguf_header_s_only_without_a_gguf_repo(recorded, tmp_path, capsys):
    """The GGUF files' general.repo_url is push.gguf_repo_id when set: then a new
    push.repo_id leaves them done (the cards link it, so the card stage reruns)."""
    root = tmp_path / "release"
    shutil.copytree(recorded, root)
    shutil.rmtree(root / "build")
    setting("push", "gguf_repo_id", "me/tiny-GGUF")(root)
    record_as_run(root / "release.yaml")
    setting("push", "repo_id", "me/other")(root)
    shown = status(root, capsys)
    assert shown["gguf"][0].startswith("done"), shown["gguf"]
    assert 'setting repo_id: "me/tiny" -> "me/other"' in shown["card"]
