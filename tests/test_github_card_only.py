"""`push --card-only`: refresh a published release's card from stored eval results.

The release is first published by the real push stage to the local Hub; the card-only
push then runs in a fresh checkout (no workspace, as on a CI runner). Everything is read
back through huggingface_hub or the server's own store.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

from release import __version__
from release.card_push import publish_card
from release.cli import main
from release.evaluate.facts import HarnessFacts
from release.evaluate.gate import gate_stored_results
from release.evaluate.scores import read_scores
from release.hub.plan import RELEASE_MANIFEST
from release.runner import run_release
from release.spec.schema import ReleaseSpec
from release.stages.push import PushStage
from tests.support.action_runner import run_action
from tests.support.hub_fixtures import REPO_ID, BuiltRelease
from tests.support.hub_server import FakeHub
from tests.test_gate import lm_eval_file

SCORES = {"arc_easy": 0.7348, "hellaswag": 0.4125}


def write_results(path: Path, scores: dict[str, float]) -> Path:
    results = [
        {"task": task, "metric": "acc", "value": value, "n_shot": 0, "dataset": f"org/{task}"}
        for task, value in scores.items()
    ]
    path.write_text(yaml.safe_dump({"harness": "my-harness", "results": results}))
    return path


def refreshed(release: BuiltRelease, tmp_path: Path, scores: dict[str, float]) -> ReleaseSpec:
    """The spec as a fresh CI checkout sees it: new results, no workspace."""
    results = write_results(tmp_path / "results.yaml", scores)
    return release.spec.model_copy(
        update={
            "workspace": tmp_path / "checkout-build",
            "eval": release.spec.eval.model_copy(update={"results": [results]}),
        }
    )


@pytest.fixture
def published(hub: FakeHub, built_release: BuiltRelease) -> BuiltRelease:
    """The release on the Hub; its stages record their tools, as the runner's do."""
    manifest = built_release.manifest()
    for record in manifest.stages.values():
        record.tools = {"model-release": __version__}
    manifest.save(built_release.manifest_path)
    list(run_release(built_release.spec, stages=[PushStage()], force=["push"]))
    return built_release


def drain(events):
    """Consume a generator of events; returns (events, result)."""
    seen = []
    while True:
        try:
            seen.append(next(events))
        except StopIteration as stop:
            return seen, stop.value


def test_card_only_pushes_the_card_and_eval_results_in_one_commit(hub, published, tmp_path):
    from huggingface_hub import HfApi, ModelCard

    api = HfApi(endpoint=hub.url)
    before = api.list_repo_refs(REPO_ID)
    weights_before = hub.repo(REPO_ID).files("main")["model.safetensors"]
    commits_before = len(hub.calls("commit"))
    downloads_before = [r.path for r in hub.calls("resolve")]

    spec = refreshed(published, tmp_path, SCORES)
    _, pushed = drain(publish_card(spec))

    assert pushed.result.status == "committed"
    assert sorted(pushed.result.uploaded) == [
        ".eval_results/arc_easy-acc.yaml",
        ".eval_results/hellaswag-acc.yaml",
        "README.md",
    ]
    assert pushed.result.deleted == [] and pushed.result.tag is None
    assert len(hub.calls("commit")) == commits_before + 1
    # Only the release manifest was read from the Hub: no model download.
    downloads = [r.path for r in hub.calls("resolve")][len(downloads_before) :]
    assert downloads and all(path.endswith(RELEASE_MANIFEST) for path in downloads)

    card = ModelCard(hub.read(REPO_ID, "README.md").decode())
    scores = {r.dataset_type: r.metric_value for r in card.data.eval_results}
    assert scores == {"org/arc_easy": 0.7348, "org/hellaswag": 0.4125}
    entry = yaml.safe_load(hub.read(REPO_ID, ".eval_results/arc_easy-acc.yaml"))
    assert entry[0]["dataset"]["id"] == "org/arc_easy" and entry[0]["value"] == 0.7348

    # The weights, the published manifest and the tag are untouched.
    assert hub.repo(REPO_ID).files("main")["model.safetensors"] == weights_before
    after = api.list_repo_refs(REPO_ID)
    assert after.tags == before.tags
    assert after.branches[0].target_commit == pushed.result.commit
    assert hub.read(REPO_ID, RELEASE_MANIFEST) == hub.read(REPO_ID, RELEASE_MANIFEST, "v1.0.0")
    local_card = spec.workspace / "card" / "README.md"
    assert (
        hashlib.sha256(hub.read(REPO_ID, "README.md")).digest()
        == hashlib.sha256(local_card.read_bytes()).digest()
    )


def test_card_only_in_a_fresh_checkout_rebuilds_the_card_byte_for_byte(
    hub, built_release, tmp_path
):
    """The card the release was built with, with scores its lm-eval run produced (in
    build/evaluate/lm-eval) beside the stored ones, is rebuilt by push --card-only in a
    fresh checkout that has only the published manifest: the same README.md and
    .eval_results entries, byte for byte, the produced scores in both."""
    from huggingface_hub import ModelCard

    stored = write_results(tmp_path / "results.yaml", SCORES)
    spec = built_release.spec.model_copy(
        update={"eval": built_release.spec.eval.model_copy(update={"results": [stored]})}
    )
    workspace = built_release.workspace
    harness_dir = workspace / "evaluate" / "lm-eval" / "me__model"
    harness_dir.mkdir(parents=True)
    produced_file = lm_eval_file(harness_dir / "results_2026-01-01T00-00-00.json", {"piqa": 0.68})
    data = json.loads(produced_file.read_text())
    data["configs"] = {"piqa": {"dataset_path": "ybisk/piqa", "test_split": "validation"}}
    produced_file.write_text(json.dumps(data))
    # what the evaluate stage records: the harness's scores, and the gate's on all of them
    produced = read_scores([produced_file], spec.base_dir)
    harness = HarnessFacts(
        tasks=["piqa"],
        backend="hf",
        dtype="float32",
        files=[str(produced_file.relative_to(workspace / "evaluate"))],
        results=produced,
    )
    gated = gate_stored_results(spec.eval, spec.base_dir, workspace, produced)
    manifest = built_release.manifest()
    manifest.stages["evaluate"].facts = gated.model_copy(update={"harness": harness}).as_json()
    for record in manifest.stages.values():
        record.tools = {"model-release": __version__}
    manifest.save(built_release.manifest_path)
    list(run_release(spec, only=["card"], force=["card"]))
    list(run_release(spec, stages=[PushStage()], force=["push"]))
    built = _card_files(workspace / "card")
    assert any("piqa" in name for name in built)

    fresh = spec.model_copy(update={"workspace": tmp_path / "checkout" / "build"})
    _, pushed = drain(publish_card(fresh))

    assert _card_files(fresh.workspace / "card") == built
    assert pushed.result.status == "unchanged"  # the Hub holds these very bytes already
    card = ModelCard(hub.read(REPO_ID, "README.md").decode())
    scores = {r.dataset_type: r.metric_value for r in card.data.eval_results}
    assert scores == {"org/arc_easy": 0.7348, "org/hellaswag": 0.4125, "ybisk/piqa": 0.68}


def _card_files(folder: Path) -> dict[str, bytes]:
    """The merged model's card and its .eval_results entries, as the card stage wrote them."""
    files = [folder / "README.md", *sorted((folder / "eval_results").glob("*.yaml"))]
    return {str(path.relative_to(folder)): path.read_bytes() for path in files}


def test_card_only_twice_changes_nothing_the_second_time(hub, published, tmp_path):
    spec = refreshed(published, tmp_path, SCORES)
    drain(publish_card(spec))
    commits = len(hub.calls("commit"))
    _, again = drain(publish_card(spec))
    assert again.result.status == "unchanged" and again.result.uploaded == []
    assert len(hub.calls("commit")) == commits


def test_card_only_refuses_a_repo_that_was_never_released(hub, built_release, tmp_path, capsys):
    spec_path = tmp_path / "release.yaml"
    spec_path.write_text(built_release.spec.to_yaml(tmp_path))
    assert main(["push", "--card-only", str(spec_path)]) == 2
    err = capsys.readouterr().err
    assert f"{REPO_ID}: no such repo on the Hub" in err
    assert not hub.calls("commit")


def test_card_only_dry_run_plans_without_committing(hub, published, tmp_path, capsys):
    spec = refreshed(published, tmp_path, {"arc_easy": 0.5})
    spec_path = tmp_path / "release.yaml"
    spec_path.write_text(spec.to_yaml(tmp_path))
    commits = len(hub.calls("commit"))
    assert main(["push", "--card-only", "--dry-run", str(spec_path)]) == 0
    out = capsys.readouterr().out
    assert f"model repo {REPO_ID} (public): one commit to main, no tag" in out
    assert ".eval_results/arc_easy-acc.yaml" in out and "README.md" in out
    assert "model.safetensors" not in out
    assert len(hub.calls("commit")) == commits


def test_card_only_in_actions_reports_the_commit_and_the_card(
    hub, published, tmp_path, monkeypatch, capsys
):
    spec = refreshed(published, tmp_path, SCORES)
    spec_path = tmp_path / "release.yaml"
    spec_path.write_text(spec.to_yaml(tmp_path))
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))

    assert main(["push", "--card-only", str(spec_path)]) == 0

    head = hub.repo(REPO_ID).branches["main"]
    text = summary.read_text()
    assert "| card | ✅ done |" in text and "| push | ✅ done |" in text
    assert "### Model card lint: passed" in text
    assert f"| committed | `{head[:12]}` |" in text
    lines = output.read_text().splitlines()
    assert lines[lines.index(next(x for x in lines if x.startswith("commit<<"))) + 1] == head
    assert "::error" not in capsys.readouterr().out


def test_the_action_pushes_a_card_only_for_the_tagged_version(hub, published, tmp_path):
    spec = refreshed(published, tmp_path, SCORES)
    spec_path = tmp_path / "release.yaml"
    spec_path.write_text(spec.to_yaml(tmp_path))
    token = os.environ["HF_TOKEN"]  # the hub fixture's canary
    inputs = {"config": str(spec_path), "card-only": "true", "hf-token": token}
    commits = len(hub.calls("commit"))

    runner_temp = tmp_path / "runner-temp"
    other = run_action(tmp_path, runner_temp, {**inputs, "expect-version": "v9.9.9"})
    assert other.returncode == 2, other.stderr
    assert f"version is {spec.version} but the tag is v9.9.9" in other.stderr
    assert len(hub.calls("commit")) == commits

    same = run_action(tmp_path, runner_temp, {**inputs, "expect-version": f"v{spec.version}"})
    assert same.returncode == 0, same.stderr
    assert len(hub.calls("commit")) == commits + 1
    # No model is downloaded, so nothing is pinned and no Hugging Face cache restored.
    assert same.steps["Pin the Hub downloads"] == "skipped"
    assert same.steps["Restore the Hugging Face cache"] == "skipped"
    assert same.outputs["commit"] == hub.repo(REPO_ID).branches["main"]
    assert same.outputs["card-lint"] == "passed"
