"""What a stage's key holds, on a real tiny release: nothing of where the release's
folder is (a copy, a CI checkout at another path keeps its stages), nothing the machine
measured (a forced rerun leaves later stages done), and none of the release's own files
(a spec and workspace saved inside the adapter's folder are not adapter inputs).

The release is built on the tiny Llama (adapter, merge, evaluate and card; the GGUF
stage is keyed the same way and takes half a minute, so it is left out).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from release.core.events import StageSkipped, StageStarted
from release.core.facts import StageFacts
from release.core.manifest import MANIFEST_NAME, Manifest
from release.runner import CONTENT_KEYED, keyed_settings, run_release, stage_key, stage_states
from release.spec.schema import load_spec
from release.stages.adapter import AdapterStage
from release.stages.base import Stage, StageContext, StageOutput, StageRun
from release.stages.push import PushStage

BUILT = {
    "adapter": "done",
    "merge": "done",
    "contamination": "skipped",
    "evaluate": "done",
    "gguf": "skipped",
    "card": "done",
    "push": "skipped",
}
RESULTS = {
    "harness": "my-harness",
    "results": [{"task": "arc_easy", "metric": "acc", "value": 0.5, "dataset": "org/arc_easy"}],
}


def files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def started(events: list) -> list[str]:
    return [event.stage for event in events if isinstance(event, StageStarted)]


@pytest.fixture(scope="module")
def built(tiny_llama_dir, tiny_qv_adapter, tmp_path_factory) -> Path:
    """release.yaml of a built release; the base model lies outside its folder, as a Hub
    cache does. Tests move copies of the folder."""
    root = tmp_path_factory.mktemp("moving") / "release"
    shutil.copytree(tiny_qv_adapter, root / "adapter")
    (root / "results.yaml").write_text(yaml.safe_dump(RESULTS))
    spec = {
        "name": "tiny",
        "version": "0.1.0",
        "base": {"path": str(tiny_llama_dir)},
        "adapter": {"path": "adapter"},
        "merge": {"shard_size": "2MB"},
        "eval": {"results": ["results.yaml"]},
        "gguf": {"types": []},
    }
    (root / "release.yaml").write_text(yaml.safe_dump(spec))
    list(run_release(load_spec(root / "release.yaml")))
    return root / "release.yaml"


def test_a_moved_release_folder_keeps_every_stage(built, tmp_path, monkeypatch):
    original = tmp_path / "release"
    shutil.copytree(built.parent, original)
    spec = load_spec(original / "release.yaml")
    assert stage_states(spec) == BUILT
    manifest = Manifest.load(spec.workspace / MANIFEST_NAME)
    assert [r.path for r in manifest.stages["card"].inputs] == ["results.yaml"]
    assert "config.json" in [r.path for r in manifest.stages["merge"].inputs]  # the base's
    before = files(original)

    moved = tmp_path / "elsewhere" / "checkout"
    shutil.move(original, moved)
    spec = load_spec(moved / "release.yaml")
    assert spec.workspace == moved / "build"
    assert stage_states(spec) == BUILT
    events = list(run_release(spec))
    assert started(events) == []
    done = [e.stage for e in events if e.reason.startswith("unchanged since")]
    assert done == [stage for stage, state in BUILT.items() if state == "done"], events
    manifest_path = Path("build") / MANIFEST_NAME
    now = files(moved)
    assert now.pop(str(manifest_path)) != before.pop(str(manifest_path))  # new hash cache
    assert now == before  # outputs: not a byte rewritten
    assert Manifest.load(moved / manifest_path).stages == manifest.stages
    cached = Manifest.load(moved / manifest_path).hash_cache
    assert any(key.startswith(str(moved)) for key in cached)
    assert not any(key.startswith(str(original)) for key in cached)  # the old place: gone

    # The hashes of the moved files were kept: the next run reads no file whole.
    import release.core.manifest

    hashed = []
    monkeypatch.setattr(release.core.manifest, "sha256_file", lambda path: hashed.append(path))
    assert started(list(run_release(spec))) == []
    assert hashed == []
    monkeypatch.undo()

    # One changed byte of the adapter still reruns it and the stages below it.
    weights = moved / "adapter" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    assert set(stage_states(spec).values()) == {"stale", "skipped"}
    assert started(list(run_release(spec))) == ["adapter", "merge", "evaluate", "card"]
    assert files(moved / "build" / "merge") != {
        k.removeprefix("build/merge/"): v for k, v in before.items() if k.startswith("build/merge/")
    }


def test_forced_reruns_that_measure_the_machine_anew_leave_later_stages_done(built, tmp_path):
    """merge and evaluate record peak memory and free disk; those differ on every run,
    and must not make the stages after them look changed."""
    shutil.copytree(built.parent, tmp_path / "release")
    spec = load_spec(tmp_path / "release" / "release.yaml")
    before = Manifest.load(spec.workspace / MANIFEST_NAME).stages
    assert started(list(run_release(spec, force=["merge", "evaluate"]))) == ["merge", "evaluate"]
    after = Manifest.load(spec.workspace / MANIFEST_NAME).stages
    assert after["card"] == before["card"]
    assert {stage: after[stage].key for stage in after} == {s: before[s].key for s in before}
    assert "free_disk_bytes" in after["evaluate"].measured
    assert after["merge"].measured["peak_rss_bytes"] > 0


def test_a_base_moved_to_another_cache_is_the_same_base(built, tiny_llama_dir, tmp_path):
    """Outside the release's folder, an input is keyed by its content alone."""
    cache = tmp_path / "other-cache" / "tiny-llama"
    shutil.copytree(tiny_llama_dir, cache)
    spec = load_spec(built)
    moved_base = spec.model_copy(update={"base": spec.base.model_copy(update={"path": cache})})
    assert stage_states(moved_base) == BUILT
    (cache / "config.json").write_text((cache / "config.json").read_text() + "\n")
    assert stage_states(moved_base)["adapter"] == "stale"


def _flip(path: Path, name: str, at: float) -> None:
    """Flip the lowest bit of the byte at relative position ``at`` of tensor ``name``'s
    data (its header unchanged): one weight's last mantissa bit."""
    from release.checkpoint.safetensors import list_tensors

    info = next(info for info in list_tensors(path) if info.name == name)
    data = bytearray(path.read_bytes())
    data[info.start + int(info.nbytes * at) // 4 * 4] ^= 0x01
    path.write_bytes(bytes(data))


def test_intake_is_keyed_on_what_it_reads_and_the_merge_on_every_byte(
    built, tiny_llama_dir, tmp_path
):
    """Intake reads a local base's config, safetensors headers and fingerprint windows;
    the merge reads every byte. A byte outside the windows reruns the merge, not intake;
    a byte inside them or the config reruns both."""
    from release.checkpoint.fingerprint import base_fingerprint
    from release.checkpoint.safetensors import list_checkpoint

    base = tmp_path / "base"
    shutil.copytree(tiny_llama_dir, base)
    shutil.copytree(built.parent, tmp_path / "release")
    spec = load_spec(tmp_path / "release" / "release.yaml")
    spec = spec.model_copy(update={"base": spec.base.model_copy(update={"path": base})})
    assert stage_states(spec) == BUILT  # the same base, in another place
    manifest = Manifest.load(spec.workspace / MANIFEST_NAME)
    weights = "model.safetensors"
    assert weights not in [r.path for r in manifest.stages["adapter"].inputs]
    assert weights in [r.path for r in manifest.stages["merge"].inputs]
    merged = files(spec.workspace / "merge")
    fingerprint = base_fingerprint(list_checkpoint(base))
    only = ["adapter", "merge"]

    _flip(base / weights, "model.layers.0.mlp.down_proj.weight", at=0.1)  # no window there
    assert base_fingerprint(list_checkpoint(base)) == fingerprint
    states = stage_states(spec)
    assert (states["adapter"], states["merge"]) == ("done", "stale")
    assert started(list(run_release(spec, only=only))) == ["merge"]
    assert files(spec.workspace / "merge") != merged
    assert stage_states(spec)["merge"] == "done"  # keyed after the run as before it

    _flip(base / weights, "model.layers.0.mlp.down_proj.weight", at=0.5)  # a window
    assert base_fingerprint(list_checkpoint(base)) != fingerprint
    assert started(list(run_release(spec, only=only))) == ["adapter", "merge"]

    (base / "config.json").write_text((base / "config.json").read_text() + "\n")
    assert stage_states(spec)["adapter"] == "stale"
    assert started(list(run_release(spec, only=only))) == ["adapter", "merge"]
    assert set(stage_states(spec).values()) == {"done", "stale", "skipped"}


class ReadFacts(StageFacts):
    stage: ClassVar[str] = "read"


class PathStage(Stage):
    """Reads an input file and holds its path in its settings, as the real stages do."""

    name, title = "reader", "Reader"

    def settings(self, spec):
        return {"adapter": str(spec.adapter.path), "heldout": str(spec.eval.heldout_text)}

    def input_paths(self, spec):
        return [spec.adapter.path, spec.eval.heldout_text]

    def run(self, ctx: StageContext) -> StageRun:
        (ctx.out_dir / "out.txt").write_text("read")
        yield ctx.log("read")
        return StageOutput(facts=ReadFacts())


def test_paths_inside_the_folder_are_keyed_relative_to_it(tmp_path):
    outside = tmp_path / "shared" / "heldout.txt"
    outside.parent.mkdir()
    outside.write_text("held out")
    root = tmp_path / "a"
    (root / "adapter").mkdir(parents=True)
    (root / "adapter" / "adapter_config.json").write_text("{}")
    spec_text = "name: t\nversion: '1'\nbase: {repo_id: a/b}\nadapter: {path: adapter}\n"
    (root / "release.yaml").write_text(spec_text + f"eval: {{heldout_text: {outside}}}\n")
    list(run_release(load_spec(root / "release.yaml"), stages=[PathStage()]))
    record = Manifest.load(root / "build" / MANIFEST_NAME).stages["reader"]
    assert [r.path for r in record.inputs] == ["adapter/adapter_config.json", "heldout.txt"]

    shutil.copytree(root, tmp_path / "b")
    copy = load_spec(tmp_path / "b" / "release.yaml")
    assert stage_states(copy, [PathStage()]) == {"reader": "done"}
    # Another file at the same place in the folder is another input.
    (tmp_path / "b" / "adapter" / "adapter_config.json").write_text('{"r": 8}')
    assert stage_states(copy, [PathStage()]) == {"reader": "stale"}
    # The same content at another place in the folder is another input too.
    renamed = tmp_path / "a" / "lora"
    (tmp_path / "a" / "adapter").rename(renamed)
    spec = load_spec(root / "release.yaml")
    spec = spec.model_copy(update={"adapter": spec.adapter.model_copy(update={"path": renamed})})
    assert stage_states(spec, [PathStage()]) == {"reader": "stale"}
    events = list(run_release(load_spec(tmp_path / "b" / "release.yaml"), stages=[PathStage()]))
    assert not any(isinstance(e, StageSkipped) for e in events)


def test_a_spec_and_workspace_inside_the_adapter_folder_are_not_its_inputs(
    tiny_llama_dir, tmp_path
):
    """The wizard saves release.yaml in the adapter's folder when the folder above holds
    another release's: then build/ lies inside the adapter input too."""
    from tests.support.lora_models import make_adapter

    adapter = make_adapter(tiny_llama_dir, tmp_path / "adapter", target_modules=["q_proj"])
    spec_path = adapter / "release.yaml"
    spec = {
        "name": "tiny",
        "version": "0.1.0",
        "base": {"path": str(tiny_llama_dir)},
        "adapter": {"path": "."},
        "eval": {"enabled": False},
        "gguf": {"types": []},
    }
    spec_path.write_text(yaml.safe_dump(spec))
    assert started(list(run_release(load_spec(spec_path), only=["adapter", "merge"]))) == [
        "adapter",
        "merge",
    ]
    spec["card"] = {"summary": "Edited after the merge."}
    spec_path.write_text(yaml.safe_dump(spec))
    loaded = load_spec(spec_path)
    assert loaded.workspace == adapter / "build"
    states = stage_states(loaded)
    assert (states["adapter"], states["merge"]) == ("done", "done")
    record = Manifest.load(loaded.workspace / MANIFEST_NAME).stages["adapter"]
    keyed = [r.path for r in record.inputs]  # the adapter's files and the base's
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(keyed)
    assert [p for p in keyed if p == "release.yaml" or p.startswith("build")] == []


def test_a_release_card_template_and_what_it_includes_are_the_card_stages_inputs(built, tmp_path):
    """card.template (beside release.yaml, extending ours) and a partial it includes:
    setting it reruns the card alone; its section is on the card with the facts' front
    matter unchanged; an edit of the partial reruns the card again."""
    from huggingface_hub import ModelCard

    root = tmp_path / "release"
    shutil.copytree(built.parent, root)
    before = (root / "build" / "card" / "README.md").read_text()
    (root / "my_card.md.j2").write_text(
        '{% extends "model-release/model_card.md.j2" %}\n'
        '{% block training %}\n{{ super() }}\n{% include "timeline.md.j2" %}\n{% endblock %}\n'
    )
    (root / "timeline.md.j2").write_text("## Progress timeline\n\nStep 100: loss 1.52.\n\n")
    spec = yaml.safe_load((root / "release.yaml").read_text())
    spec["card"] = {"template": "my_card.md.j2"}
    (root / "release.yaml").write_text(yaml.safe_dump(spec))
    loaded = load_spec(root / "release.yaml")
    assert stage_states(loaded)["card"] == "stale"
    assert started(list(run_release(loaded))) == ["card"]
    after = (root / "build" / "card" / "README.md").read_text()
    assert "\n## Progress timeline\n\nStep 100: loss 1.52.\n" in after
    assert ModelCard(after).data.to_dict() == ModelCard(before).data.to_dict()
    inputs = Manifest.load(loaded.workspace / MANIFEST_NAME).stages["card"].inputs
    assert [r.path for r in inputs] == ["results.yaml", "my_card.md.j2", "timeline.md.j2"]

    (root / "timeline.md.j2").write_text("## Progress timeline\n\nStep 200: loss 1.31.\n\n")
    assert stage_states(loaded)["card"] == "stale"
    assert started(list(run_release(loaded))) == ["card"]
    assert "Step 200: loss 1.31." in (root / "build" / "card" / "README.md").read_text()


class AdapterStageBefore(AdapterStage):
    """The adapter stage as keyed before ``IntakeSettings``: a hand-kept list."""

    def settings(self, spec):
        settings = {
            "base": spec.base.model_dump(mode="json"),
            "allow_pickle": spec.adapter.allow_pickle,
            "allow_fingerprint_mismatch": spec.base.allow_fingerprint_mismatch,
        }
        if spec.adapter.repo_id:
            settings["adapter"] = {
                "repo_id": spec.adapter.repo_id,
                "revision": spec.adapter.revision,
            }
        return settings

    def input_paths(self, spec):
        local = spec.adapter.path if spec.adapter else None
        paths = [*([local] if local else []), *spec.eval.previous]
        return paths + ([spec.base.path] if spec.base.path else [])


class PushStageBefore(PushStage):
    """The push stage as keyed before ``PushSettings``."""

    def settings(self, spec):
        return {"name": spec.name, "version": spec.version, **spec.push.model_dump(mode="json")}


LOCAL = {"adapter": {"path": "adapter"}, "base": {"path": "base"}}
HUB = {"adapter": {"repo_id": "me/lora", "revision": "v2", "allow_pickle": True}}


@pytest.mark.parametrize(
    ("stage", "before", "spec"),
    [
        (AdapterStage(), AdapterStageBefore(), LOCAL),
        (AdapterStage(), AdapterStageBefore(), {**LOCAL, "eval": {"previous": ["last.json"]}}),
        (AdapterStage(), AdapterStageBefore(), HUB),
        (
            AdapterStage(),
            AdapterStageBefore(),
            {
                **HUB,
                "base": {
                    "repo_id": "org/base",
                    "revision": "main",
                    "fingerprint": "ab" * 32,
                    "allow_fingerprint_mismatch": True,
                    "trust_remote_code": True,
                },
            },
        ),
        (PushStage(), PushStageBefore(), {**LOCAL, "push": {"repo_id": "me/tiny"}}),
        (
            PushStage(),
            PushStageBefore(),
            {
                **LOCAL,
                "push": {
                    "repo_id": "me/tiny",
                    "gguf_repo_id": "me/tiny-GGUF",
                    "adapter_repo_id": "me/tiny-lora",
                    "private": True,
                    "create_pr": True,
                    "tag": False,
                },
                "eval": {"enabled": True, "max_task_drop": 0.2, "max_average_drop": 0.05},
            },
        ),
    ],
    ids=["local", "previous", "hub", "hub-base", "push", "push-all"],
)
def test_the_keys_from_settings_objects_are_the_keys_of_the_lists_they_replaced(
    tmp_path, stage, before, spec
):
    """The adapter and push stages' keys, computed from the objects their domains
    receive (IntakeSettings, PushSettings), are byte for byte those of the hand-kept
    lists they replaced: a workspace built before keeps its stages done."""
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text('{"r": 8}')
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "last.json").write_text('{"name": "tiny", "version": "0.9.0", "stages": {}}')
    data = {"name": "tiny", "version": "1.0.0", "base": {"repo_id": "org/base"}, **spec}
    (tmp_path / "release.yaml").write_text(yaml.safe_dump(data))
    loaded = load_spec(tmp_path / "release.yaml")
    manifest = Manifest(name="tiny", version="1.0.0")
    key, inputs = stage_key(stage, loaded, manifest)
    assert (key, inputs) == stage_key(before, loaded, manifest)
    assert keyed_settings(stage, loaded) == keyed_settings(before, loaded)


def test_a_recipe_release_keys_its_base_intake_by_the_base_alone(tmp_path):
    """Without adapter (merge.recipe names the models) intake checks the base: the
    adapter stage's key holds base and allow_fingerprint_mismatch, as the list of
    before held them, and its inputs are the local base and eval.previous."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "last.json").write_text('{"name": "tiny", "version": "0.9.0", "stages": {}}')
    recipe = {"merge_method": "linear", "models": [{"model": "base"}, {"model": "org/ft"}]}
    data = {"name": "tiny", "version": "1.0.0", "base": {"path": "base"}}
    data |= {"merge": {"recipe": recipe}, "eval": {"previous": ["last.json"]}}
    (tmp_path / "release.yaml").write_text(yaml.safe_dump(data))
    spec = load_spec(tmp_path / "release.yaml")
    stage = AdapterStage()
    assert stage.skip_reason(spec) is None
    assert keyed_settings(stage, spec) == {
        "base": spec.base.model_dump(mode="json") | {"path": CONTENT_KEYED},
        "allow_fingerprint_mismatch": False,
    }
    inputs = stage_key(stage, spec, Manifest(name="tiny", version="1.0.0"))[1]
    assert [record.path for record in inputs] == ["last.json", "base/config.json"]


def test_the_push_key_holds_the_eval_settings_it_reads_where_they_are_not_defaults(tmp_path):
    """The gate check reads eval.enabled and the release notes the two drop limits: the
    push's key holds them (its only key bytes not as before), at their defaults by
    their absence."""
    base = {"name": "tiny", "version": "1.0.0", "base": {"repo_id": "org/base"}}
    base |= {"adapter": {"repo_id": "me/lora"}, "push": {"repo_id": "me/tiny"}}

    def settings(**eval_section) -> dict:
        (tmp_path / "release.yaml").write_text(yaml.safe_dump({**base, "eval": eval_section}))
        return keyed_settings(PushStage(), load_spec(tmp_path / "release.yaml"))

    assert settings() == settings(enabled=True, max_task_drop=0.2, max_average_drop=0.05)
    assert "eval" not in settings()
    assert settings(enabled=False)["eval"] == {"enabled": False}
    assert settings(max_task_drop=0.1, max_average_drop=0.01)["eval"] == {
        "max_task_drop": 0.1,
        "max_average_drop": 0.01,
    }
    assert settings(max_new_tokens=7) == settings()  # the evaluate stage's, not the push's


def test_the_card_key_names_a_gguf_template_only_where_one_is_set(tmp_path):
    """card.gguf_template is keyed where set; unset, the card's keyed settings are the
    card section as it was before the field existed, so built cards stay done."""
    from release.stages.card import CardStage

    (tmp_path / "adapter").mkdir()
    data = {"name": "tiny", "version": "1.0.0", "base": {"repo_id": "org/base"}, **LOCAL}
    (tmp_path / "release.yaml").write_text(yaml.safe_dump(data))
    spec = load_spec(tmp_path / "release.yaml")
    card = keyed_settings(CardStage(), spec)["card"]
    assert card == spec.card.model_dump(mode="json", exclude={"gguf_template"})

    (tmp_path / "my_gguf.md.j2").write_text('{% extends "model-release/gguf_card.md.j2" %}\n')
    data["card"] = {"gguf_template": "my_gguf.md.j2"}
    (tmp_path / "release.yaml").write_text(yaml.safe_dump(data))
    spec = load_spec(tmp_path / "release.yaml")
    assert "gguf_template" in keyed_settings(CardStage(), spec)["card"]
    inputs = stage_key(CardStage(), spec, Manifest(name="tiny", version="1.0.0"))[1]
    assert [record.path for record in inputs] == ["my_gguf.md.j2"]
