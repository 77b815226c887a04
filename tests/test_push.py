"""The push stage against a local Hub, with the real huggingface_hub client.

Every check reads back through huggingface_hub (hf_hub_download, list_repo_refs) or the
server's own store, never through our plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from release.core.errors import InputError, StageError
from release.core.manifest import MANIFEST_NAME, Manifest
from release.hub.plan import RELEASE_MANIFEST, render_plan
from release.runner import run_release
from release.stages.push import PushStage, dry_run
from tests.support.hub_fixtures import (
    ADAPTER_REPO_ID,
    CANARY_TOKEN,
    GGUF_REPO_ID,
    REPO_ID,
    BuiltRelease,
)
from tests.support.hub_server import FakeHub
from tests.support.secret_scan import Scan


def push(spec, force: bool = True) -> list:
    """Run only the push stage; returns the events."""
    return list(run_release(spec, stages=[PushStage()], force=["push"] if force else ()))


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def expected_files(release: BuiltRelease, *stages: str) -> dict[str, str]:
    """path in repo -> sha256, from the manifest the stages wrote."""
    manifest = release.manifest()
    files = {}
    for stage in stages:
        for output in manifest.stages[stage].outputs:
            files[output.path.removeprefix(f"{stage}/")] = output.sha256
    return files


def expected_gguf_repo(release: BuiltRelease) -> dict[str, str]:
    """The GGUF files, and the GGUF card the card stage wrote, as README.md."""
    card = expected_files(release, "card")["gguf/README.md"]
    return expected_files(release, "gguf") | {"README.md": card}


def downloaded(hub: FakeHub, repo_id: str, revision: str, tmp_path: Path) -> dict[str, str]:
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi(endpoint=hub.url, token=CANARY_TOKEN)
    names = [f for f in api.list_repo_files(repo_id, revision=revision) if f != ".gitattributes"]
    return {
        name: sha256(
            hf_hub_download(
                repo_id,
                name,
                revision=revision,
                endpoint=hub.url,
                token=CANARY_TOKEN,
                cache_dir=tmp_path / "download",
            )
        )
        for name in names
    }


def commits_on_main(hub: FakeHub, repo_id: str) -> int:
    repo = hub.repo(repo_id)
    count, oid = 0, repo.branches["main"]
    while oid is not None:
        count, oid = count + 1, repo.commits[oid]["parent"]
    return count


def test_push_publishes_every_file_in_one_tagged_commit(hub, built_release, tmp_path):
    from huggingface_hub import HfApi

    events = push(built_release.spec)

    model = expected_files(built_release, "merge")
    model["README.md"] = expected_files(built_release, "card")["README.md"]
    remote = downloaded(hub, REPO_ID, "v1.0.0", tmp_path)
    published_manifest = remote.pop(RELEASE_MANIFEST)
    assert remote == model
    assert "model.safetensors" in remote and "config.json" in remote
    api = HfApi(endpoint=hub.url, token=CANARY_TOKEN)
    refs = api.list_repo_refs(REPO_ID)
    assert [(t.name, t.target_commit) for t in refs.tags] == [
        ("v1.0.0", refs.branches[0].target_commit)
    ]
    assert commits_on_main(hub, REPO_ID) == 2  # the repo's initial commit, then ours
    assert len(hub.calls("commit")) == 1
    assert hub.calls("lfs_upload"), "the weights went over LFS"

    text = hub.read(REPO_ID, RELEASE_MANIFEST)
    assert hashlib.sha256(text).hexdigest() == published_manifest
    stages = json.loads(text)["stages"]
    assert sorted(stages) == ["adapter", "card", "evaluate", "gguf", "merge"]
    assert "hash_cache" not in json.loads(text)

    facts = built_release.manifest().stages["push"].facts
    (result,) = facts["repos"]
    assert result["status"] == "committed"
    assert result["tag"] == "v1.0.0"
    assert result["commit"] == refs.tags[0].target_commit
    assert sorted(result["uploaded"]) == sorted([*model, RELEASE_MANIFEST])
    assert (built_release.workspace / "push" / "manifest.json").read_bytes() == text
    assert type(events[-1]).__name__ == "StageFinished"


def test_gguf_and_adapter_repos_get_their_own_commit_card_and_tag(hub, built_release, tmp_path):
    import gguf
    from huggingface_hub import ModelCard

    spec = built_release.with_push(
        gguf_repo_id=GGUF_REPO_ID, adapter_repo_id=ADAPTER_REPO_ID, private=True
    )
    push(spec)
    assert all(hub.repo(r).private for r in (REPO_ID, GGUF_REPO_ID, ADAPTER_REPO_ID))

    gguf_remote = downloaded(hub, GGUF_REPO_ID, "v1.0.0", tmp_path)
    gguf_remote.pop(RELEASE_MANIFEST)
    assert gguf_remote == expected_gguf_repo(built_release)
    card = ModelCard(hub.read(GGUF_REPO_ID, "README.md").decode())
    assert card.data.base_model == REPO_ID
    assert card.data.base_model_relation == "quantized"
    gguf_path = tmp_path / "copy.gguf"
    gguf_path.write_bytes(hub.read(GGUF_REPO_ID, "tiny-chat-f32.gguf"))
    reader = gguf.GGUFReader(gguf_path)
    assert [t.name for t in reader.tensors] == ["token_embd.weight"]

    adapter_remote = downloaded(hub, ADAPTER_REPO_ID, "v1.0.0", tmp_path)
    assert set(adapter_remote) == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
        RELEASE_MANIFEST,
    }
    card = ModelCard(hub.read(ADAPTER_REPO_ID, "README.md").decode())
    assert card.data.base_model_relation == "adapter"
    facts = built_release.manifest().stages["push"].facts
    assert [r["repo_id"] for r in facts["repos"]] == [REPO_ID, GGUF_REPO_ID, ADAPTER_REPO_ID]


def test_rerun_after_success_changes_nothing(hub, built_release):
    push(built_release.spec)
    before = hub.repo(REPO_ID)
    requests = len(hub.requests)

    push(built_release.spec)

    new = [r.route for r in hub.requests[requests:]]
    assert not {"preupload", "lfs_batch", "lfs_upload", "commit", "tag"} & set(new)
    assert hub.repo(REPO_ID) == before
    (result,) = built_release.manifest().stages["push"].facts["repos"]
    assert result["status"] == "released-before"


def test_runner_skips_a_push_whose_inputs_did_not_change(hub, built_release):
    push(built_release.spec)
    requests = len(hub.requests)
    events = push(built_release.spec, force=False)
    assert [type(e).__name__ for e in events] == ["StageSkipped"]
    assert len(hub.requests) == requests


def test_failed_commit_leaves_no_commit_and_rerun_completes(hub, built_release, tmp_path):
    hub.fail("commit", 500)
    with pytest.raises(StageError, match="could not commit the release: injected failure"):
        push(built_release.spec)
    assert commits_on_main(hub, REPO_ID) == 1
    assert hub.repo(REPO_ID).tags == {}
    assert "push" not in built_release.manifest().stages
    assert not (built_release.workspace / "push").exists()
    uploads = len(hub.calls("lfs_upload"))
    assert uploads >= 1

    push(built_release.spec)

    assert len(hub.calls("lfs_upload")) == uploads, "the rerun reuses the uploaded weights"
    assert commits_on_main(hub, REPO_ID) == 2
    assert list(hub.repo(REPO_ID).tags) == ["v1.0.0"]
    remote = downloaded(hub, REPO_ID, "v1.0.0", tmp_path)
    remote.pop(RELEASE_MANIFEST)
    assert (
        remote["model.safetensors"] == expected_files(built_release, "merge")["model.safetensors"]
    )


def test_upload_failing_midway_release_completes_on_rerun(hub, built_release, tmp_path):
    """The model repo goes up, the GGUF upload is refused: the rerun finishes the GGUF
    repo and leaves the model repo as it is."""
    spec = built_release.with_push(gguf_repo_id=GGUF_REPO_ID)
    hub.fail("lfs_upload", 403, after=len(["model.safetensors"]))
    with pytest.raises(StageError, match=f"{GGUF_REPO_ID}: could not commit the release"):
        push(spec)
    assert list(hub.repo(REPO_ID).tags) == ["v1.0.0"]
    assert commits_on_main(hub, GGUF_REPO_ID) == 1
    model_state = hub.repo(REPO_ID)

    push(spec)

    assert hub.repo(REPO_ID) == model_state
    assert list(hub.repo(GGUF_REPO_ID).tags) == ["v1.0.0"]
    facts = built_release.manifest().stages["push"].facts
    assert [r["status"] for r in facts["repos"]] == ["released-before", "committed"]
    remote = downloaded(hub, GGUF_REPO_ID, "v1.0.0", tmp_path)
    remote.pop(RELEASE_MANIFEST)
    assert remote == expected_gguf_repo(built_release)


def test_pull_request_mode_leaves_main_alone_and_tags_after_the_merge(hub, built_release):
    spec = built_release.with_push(create_pr=True)
    push(spec)

    repo = hub.repo(REPO_ID)
    assert commits_on_main(hub, REPO_ID) == 1
    assert list(repo.pull_requests) == [1]
    assert repo.tags == {}
    pr_files = repo.files("refs/pr/1")
    assert pr_files["model.safetensors"].sha256 == sha256(
        built_release.workspace / "merge" / "model.safetensors"
    )
    (result,) = built_release.manifest().stages["push"].facts["repos"]
    assert result["status"] == "pull-request"
    assert result["pull_request"].endswith(f"/{REPO_ID}/discussions/1")
    assert result["tag"] is None

    push(spec)
    assert list(hub.repo(REPO_ID).pull_requests) == [1], "the open pull request is reused"

    hub.merge_pull_request(REPO_ID, 1)
    push(spec)
    repo = hub.repo(REPO_ID)
    assert repo.tags == {"v1.0.0": repo.branches["main"]}


def test_an_existing_tag_is_never_moved(hub, built_release):
    push(built_release.spec)
    tagged = hub.repo(REPO_ID).tags["v1.0.0"]
    card = built_release.workspace / "card" / "README.md"
    card.write_text(card.read_text() + "\nOne more line.\n")
    _rerecord(built_release, "card")

    with pytest.raises(StageError, match=r"tag v1\.0\.0 already exists.*bump `version`"):
        push(built_release.spec)
    assert hub.repo(REPO_ID).tags == {"v1.0.0": tagged}
    assert len(hub.calls("commit")) == 1


def _rerun_elsewhere(release: BuiltRelease, change) -> None:
    """The manifest as another runner's build of the release leaves it: ``change``
    applied to each stage record, the push's own record gone."""
    manifest = release.manifest()
    manifest.stages.pop("push")
    for record in manifest.stages.values():
        change(record)
    manifest.save(release.manifest_path)


def _other_timings(record) -> None:
    record.finished_at = "2031-01-01T00:00:00+00:00"
    record.seconds += 12.345
    record.measured = {name: 1 for name in record.measured}


def test_a_rebuild_with_other_timings_is_the_published_release(hub, built_release):
    push(built_release.spec)
    published = hub.read(REPO_ID, RELEASE_MANIFEST)
    before = hub.repo(REPO_ID)
    _rerun_elsewhere(built_release, _other_timings)

    push(built_release.spec)

    assert hub.repo(REPO_ID) == before
    assert hub.read(REPO_ID, RELEASE_MANIFEST) == published
    (result,) = built_release.manifest().stages["push"].facts["repos"]
    assert result["status"] == "released-before"
    assert (built_release.workspace / "push" / "manifest.json").read_bytes() != published


def test_a_rebuild_that_measured_otherwise_is_refused_under_the_same_tag(hub, built_release):
    push(built_release.spec)
    tagged = hub.repo(REPO_ID).tags["v1.0.0"]

    def other_fact(record) -> None:
        _other_timings(record)
        if "gate" in record.facts:
            record.facts["gate"]["score"] = 0.5

    _rerun_elsewhere(built_release, other_fact)
    differ = rf"tag v1\.0\.0 already exists and holds other files \(1 differ: {RELEASE_MANIFEST}\)"
    with pytest.raises(StageError, match=differ):
        push(built_release.spec)
    assert hub.repo(REPO_ID).tags == {"v1.0.0": tagged}
    assert len(hub.calls("commit")) == 1


def test_a_new_version_replaces_stale_shards(hub, built_release):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=CANARY_TOKEN)
    api.create_repo(REPO_ID)
    api.upload_file(
        path_or_fileobj=b"old shard",
        path_in_repo="model-00002-of-00002.safetensors",
        repo_id=REPO_ID,
    )
    api.upload_file(path_or_fileobj=b"notes", path_in_repo="NOTES.md", repo_id=REPO_ID)

    push(built_release.spec)

    files = hub.repo(REPO_ID).files("v1.0.0")
    assert "model-00002-of-00002.safetensors" not in files
    assert "NOTES.md" in files, "only weights a release replaces are deleted"
    (result,) = built_release.manifest().stages["push"].facts["repos"]
    assert result["deleted"] == ["model-00002-of-00002.safetensors"]


def test_dry_run_shows_the_plan_and_touches_nothing(hub, built_release):
    spec = built_release.with_push(gguf_repo_id=GGUF_REPO_ID, create_pr=True)
    before = {p: p.stat().st_mtime_ns for p in built_release.workspace.rglob("*")}

    plan, warnings = dry_run(spec)
    text = render_plan(plan)

    assert hub.requests == []
    assert {p: p.stat().st_mtime_ns for p in built_release.workspace.rglob("*")} == before
    assert warnings == []
    files = {**expected_files(built_release, "merge"), **expected_files(built_release, "gguf")}
    for path, digest in files.items():
        assert path in text and digest in text
    size = (built_release.workspace / "merge" / "model.safetensors").stat().st_size
    assert f"{size / 1e6:.1f} MB" in text
    assert f"model repo {REPO_ID} (public): one commit to a pull request, tag v1.0.0" in text
    assert "commit message: Release tiny-chat v1.0.0 (GGUF)" in text
    assert [r.repo_id for r in plan.repos] == [REPO_ID, GGUF_REPO_ID]
    assert plan.to_dict()["repos"][0]["tag"] == "v1.0.0"


def test_dry_run_without_a_built_release_says_what_to_run(built_release):
    built_release.manifest_path.unlink()
    with pytest.raises(FileNotFoundError, match="run `model-release run` first"):
        dry_run(built_release.spec)


def _fail_gate(release: BuiltRelease) -> None:
    manifest = release.manifest()
    manifest.stages["evaluate"].facts = {"gate": {"passed": False}}
    manifest.save(release.manifest_path)


def _break_card(release: BuiltRelease) -> None:
    card = release.workspace / "card" / "README.md"
    card.write_text(card.read_text().replace("license: apache-2.0", "license: not-a-licence"))
    _rerecord(release, "card")


def _rerecord(release: BuiltRelease, stage: str) -> None:
    manifest = release.manifest()
    record = manifest.stages[stage]
    record.outputs = [
        manifest.record(release.workspace / o.path, relative_to=release.workspace)
        for o in record.outputs
    ]
    manifest.save(release.manifest_path)


def _tamper_weights(release: BuiltRelease) -> None:
    weights = release.workspace / "merge" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (_fail_gate, "the evaluation gate failed"),
        (_break_card, r"card has errors.*README\.md:2: license: 'not-a-licence'"),
        (_tamper_weights, r"model\.safetensors changed after the manifest recorded it"),
    ],
    ids=["gate", "card", "hash"],
)
def test_refuses_before_sending_a_byte(hub, built_release, breakage, message):
    breakage(built_release)
    with pytest.raises(StageError, match=message):
        push(built_release.spec)
    with pytest.raises(StageError, match=message):
        dry_run(built_release.spec)
    assert hub.requests == []


def test_no_token_is_an_error_before_any_request(hub, built_release, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(StageError, match=r"no Hugging Face token.*HF_TOKEN"):
        push(built_release.spec)
    assert hub.requests == []


def test_a_refused_token_says_what_to_do(hub, built_release, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(StageError, match=r"could not create the repo.*hf auth login"):
        push(built_release.spec)


def test_the_token_appears_in_no_output_or_file(hub, built_release, capfd, caplog):
    spec = built_release.with_push(gguf_repo_id=GGUF_REPO_ID)
    hub.fail("commit", 500)
    with pytest.raises(StageError) as failure:
        push(spec)
    events = push(spec)

    assert all(hub.calls(route) for route in ("commit", "lfs_upload", "tag"))
    assert all(f"Bearer {CANARY_TOKEN}" == r.authorization for r in hub.calls("commit"))
    scan = Scan(CANARY_TOKEN)
    scan.many("events", [repr(events), str(failure.value), repr(failure.value.__cause__)])
    scan.many("output", [caplog.text, *capfd.readouterr()])
    scan.files(built_release.workspace, hub.root, Path(os.environ["HF_HOME"]))
    assert scan.leaks == []


def test_the_repos_must_differ(built_release):
    spec = built_release.with_push(gguf_repo_id=REPO_ID)
    with pytest.raises(InputError, match="repos must differ"):
        dry_run(spec)


def test_skipped_without_a_repo_id(built_release):
    spec = built_release.with_push(repo_id=None)
    assert PushStage().skip_reason(spec) == "no push.repo_id in the spec"
    assert PushStage().skip_reason(built_release.spec) is None


def test_cli_push_refuses_files_older_than_the_spec(hub, built_release, capsys):
    from release.cli import main
    from release.spec.schema import load_spec
    from tests.support.tui_workspace import record_current_keys

    spec_path = built_release.workspace.parent / "release.yaml"
    spec_path.write_text(built_release.spec.to_yaml(spec_path.parent))
    record_current_keys(load_spec(spec_path))
    assert main(["push", str(spec_path)]) == 0
    assert list(hub.repo(REPO_ID).tags) == ["v1.0.0"]

    edited = spec_path.read_text().replace(
        "name: tiny-chat", "name: tiny-chat\ncard:\n  summary: new"
    )
    spec_path.write_text(edited)
    capsys.readouterr()
    assert main(["push", str(spec_path)]) == 2
    err = capsys.readouterr().err
    assert "card changed or not built since the last run" in err
    assert f"run `model-release run {spec_path}`" in err


def with_results(release: BuiltRelease, folder: Path, scores: dict[str, float]):
    """The spec with stored eval results, and the real card stage run on them."""
    import yaml

    from release.stages.card import CardStage

    rows = [
        {"task": task, "metric": "acc", "value": value, "n_shot": 0, "dataset": f"org/{task}"}
        for task, value in scores.items()
    ]
    results = folder / "results.yaml"
    results.write_text(yaml.safe_dump({"harness": "my-harness", "results": rows}))
    spec = release.spec.model_copy(
        update={"eval": release.spec.eval.model_copy(update={"results": [results]})}
    )
    list(run_release(spec, stages=[CardStage()], force=["card"]))
    return spec


def test_the_push_publishes_the_card_stages_eval_results(hub, built_release, tmp_path):
    from huggingface_hub import HfApi, parse_eval_result_entries

    api = HfApi(endpoint=hub.url, token=CANARY_TOKEN)
    api.create_repo(REPO_ID)
    api.upload_file(
        path_or_fileobj=b"- old", path_in_repo=".eval_results/old.yaml", repo_id=REPO_ID
    )
    spec = with_results(built_release, tmp_path, {"arc_easy": 0.7348, "hellaswag": 0.4125})
    entries = {
        f".{path}": digest  # the card stage's eval_results/ go to the Hub's .eval_results/
        for path, digest in expected_files(built_release, "card").items()
        if path.startswith("eval_results/")
    }
    assert sorted(entries) == [
        ".eval_results/arc_easy-acc.yaml",
        ".eval_results/hellaswag-acc.yaml",
    ]

    push(spec)

    remote = downloaded(hub, REPO_ID, "v1.0.0", tmp_path)
    assert {k: v for k, v in remote.items() if k.startswith(".eval_results/")} == entries
    scores = {}
    for name in entries:
        (entry,) = parse_eval_result_entries(yaml_of(hub.read(REPO_ID, name, "v1.0.0")))
        scores[entry.dataset_id] = entry.value
    assert scores == {"org/arc_easy": 0.7348, "org/hellaswag": 0.4125}
    (result,) = built_release.manifest().stages["push"].facts["repos"]
    assert result["deleted"] == [".eval_results/old.yaml"], "an older release's scores go"


def yaml_of(data: bytes):
    import yaml

    return yaml.safe_load(data)


def cli_plan(spec, folder: Path, capsys) -> str:
    """`model-release push --dry-run` on ``spec``, saved in ``folder``, of a release built
    from it: the hand-written records get the version and keys a run of it leaves (else
    the dry run refuses, as the push does: test_the_dry_run_refuses_what_the_push_would);
    its output."""
    from release.cli import main
    from release.spec.schema import load_spec
    from tests.support.tui_workspace import record_current_keys

    path = folder / "release.yaml"
    path.write_text(spec.to_yaml(folder))
    manifest_path = spec.workspace / MANIFEST_NAME
    manifest = Manifest.load(manifest_path)
    manifest.version = spec.version
    manifest.save(manifest_path)
    record_current_keys(load_spec(path))
    assert main(["push", "--dry-run", str(path)]) == 0
    return " ".join(capsys.readouterr().out.split())


def test_the_dry_run_says_what_the_hub_holds_and_only_reads(hub, built_release, tmp_path, capsys):
    from release.core.units import human

    spec = built_release.spec
    plan, _ = dry_run(spec)
    size, count = human(plan.repos[0].total_bytes, "bytes"), len(plan.repos[0].files)
    text = cli_plan(spec, tmp_path, capsys)
    assert (
        "on the Hub: no such repo (or not visible without a token): the push creates it "
        f"and uploads all {count} files ({size}), then tags it v1.0.0" in text
    )
    assert hub.calls("commit") == [] and hub.calls("create_repo") == []

    events = push(spec)
    assert f"{REPO_ID}: one commit uploading {count} files ({size}); 0 already on the Hub" in [
        getattr(e, "message", None) for e in events
    ]
    before = len(hub.requests)
    text = cli_plan(spec, tmp_path, capsys)
    tagged = hub.repo(REPO_ID).tags["v1.0.0"]
    assert (
        f"on the Hub: tag v1.0.0 exists (released before at {tagged[:12]}): nothing to push" in text
    )
    reads = hub.requests[before:]
    assert reads and {r.method for r in reads} == {"GET"}
    assert {r.authorization for r in reads} == {f"Bearer {CANARY_TOKEN}"}
    # The push does what the plan said.
    push(spec)
    (again,) = built_release.manifest().stages["push"].facts["repos"]
    assert again["status"] == "released-before" and again["commit"] == tagged
    assert hub.repo(REPO_ID).tags == {"v1.0.0": tagged}

    card = built_release.workspace / "card" / "README.md"
    card.write_text(card.read_text() + "\nOne more line.\n")
    _rerecord(built_release, "card")
    text = cli_plan(spec, tmp_path, capsys)
    assert (
        "on the Hub: tag v1.0.0 already exists and holds other files (2 differ: README.md, "
        f"{RELEASE_MANIFEST}); a published tag is never moved: the push refuses; bump `version`"
        in text
    )
    with pytest.raises(StageError, match=r"tag v1\.0\.0 already exists and holds other files \(2"):
        push(spec)

    newer = spec.model_copy(update={"version": "1.0.1"})
    plan, _ = dry_run(newer)
    changed = [f for f in plan.repos[0].files if f.path_in_repo in ("README.md", RELEASE_MANIFEST)]
    size = human(sum(f.size for f in changed), "bytes")
    text = cli_plan(newer, tmp_path, capsys)
    assert (
        f"on the Hub: one commit uploading 2 files ({size}); {count - 2} already on the Hub, "
        "then tags it v1.0.1" in text
    )


def test_the_dry_run_refuses_what_the_push_would(hub, built_release, tmp_path, capsys, monkeypatch):
    """issue #26 item 8: a spec edited since the card was built. `push` refuses it; so
    does `push --dry-run`, after a plan that marks the stale stage's files and says why,
    and that a push without a token would stop."""
    from release.cli import main

    cli_plan(built_release.spec, tmp_path, capsys)  # built from this spec: the dry run passes
    path = tmp_path / "release.yaml"
    path.write_text(
        path.read_text().replace("name: tiny-chat", "name: tiny-chat\ncard:\n  summary: new")
    )
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no-login"))  # no stored token either
    for command in (["push", "--dry-run"], ["push"]):
        assert main([*command, str(path)]) == 2
        out, err = capsys.readouterr()
        assert err.count("\n") == 1  # one line: the error and its hint
        assert (
            f"error: {path}: card changed or not built since the last run "
            '(card: setting card.summary: "" -> "new"); pushing now would publish '
            "out-of-date files" in err
        )
    assert main(["push", "--dry-run", str(path)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "warning: stale: the card stage's files are not the spec's "
        '(setting card.summary: "" -> "new")' in out
    )
    assert "warning: no Hugging Face token: the push would stop before sending" in out
    assert re.search(r" README\.md [\d.]+ \S+ sha256 [0-9a-f]{64} \[stale: card\]", out)
    assert out.count("[stale:") == 1  # the card alone: the weights are as built
    assert hub.requests == [] or {r.method for r in hub.requests} == {"GET"}


def test_the_dry_run_says_when_the_hub_cannot_be_reached(
    built_release, tmp_path, monkeypatch, capsys
):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    text = cli_plan(built_release.spec, tmp_path, capsys)
    assert f"on the Hub: the Hub at http://127.0.0.1:{port} cannot be reached (" in text
    assert "not checked" in text and "model.safetensors" in text
