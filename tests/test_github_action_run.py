"""action.yml on a tag push, as a runner runs it (tests/support/action_runner.py), in a release
repository that holds only release.yaml and stored eval results: the base and the
adapter are on the local Hub, and the release goes there too.

What is checked is what a workflow and a user see: the action's outputs, the job
summary, the log groups, and the Hub's state read back from the server (the release
commit and its tag), plus the commits the manifest, card and GGUF header pin.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from release.core.manifest import Manifest
from release.hub.plan import RELEASE_MANIFEST
from release.merge.facts import AdapterFacts
from tests.support.action_runner import ActionRun, run_action
from tests.support.hub_fixtures import CANARY_TOKEN, upload_folder
from tests.support.hub_server import FakeHub, HubHTTPError

BASE_ID = "acme/tiny-base"
ADAPTER_ID = "trainer/tiny-lora"
REPO_ID = "tester/tiny-chat"

RELEASE_YAML = f"""\
name: tiny-chat
version: 1.0.0
base:
  repo_id: {BASE_ID}
adapter:
  repo_id: {ADAPTER_ID}
workspace: build
eval:
  results: [results/scores.yaml]
gguf:
  types: [f16]
card:
  summary: A tiny model released from a repository that holds only release.yaml.
  license: apache-2.0
  language: [en]
push:
  repo_id: {REPO_ID}
"""

SCORES = {
    "harness": "my-harness",
    "results": [
        {"task": "arc_easy", "metric": "acc", "value": 0.51, "n_shot": 0, "dataset": "org/arc"}
    ],
}


@pytest.fixture
def sources(hub: FakeHub, tiny_llama_dir, tiny_adapter) -> dict[str, str]:
    """The base and the adapter on the local Hub, as a trainer left them; their commits."""
    return {
        "base": upload_folder(hub, BASE_ID, tiny_llama_dir),
        "adapter": upload_folder(hub, ADAPTER_ID, tiny_adapter),
    }


def checkout(root: Path, version: str = "1.0.0") -> Path:
    """A fresh clone of the release repository: release.yaml and the stored results."""
    root.mkdir(parents=True)
    (root / "release.yaml").write_text(RELEASE_YAML.replace("1.0.0", version))
    (root / "results").mkdir()
    (root / "results" / "scores.yaml").write_text(yaml.safe_dump(SCORES))
    return root


def tag_push(root: Path, version: str = "1.0.0", **inputs: str) -> tuple[ActionRun, float]:
    """The release workflow's action step on the tag v<version>, on a fresh runner."""
    given = {"hf-token": CANARY_TOKEN, "expect-version": f"v{version}", **inputs}
    start = time.perf_counter()
    run = run_action(checkout(root / "repo", version), root / "runner-temp", given)
    return run, time.perf_counter() - start


def downloads(hub: FakeHub, since: int = 0) -> list[str]:
    return [r.path for r in hub.requests[since:] if r.route in ("resolve", "cdn")]


def test_a_tag_push_releases_from_a_repository_with_only_release_yaml(
    hub, sources, tmp_path, capsys
):
    """The first release of a tag; the same tag's workflow rerun (publishes nothing); the
    next tag on a runner whose Hugging Face cache was restored (downloads nothing). One
    test: each step starts from the Hub the one before left."""
    first, first_seconds = tag_push(tmp_path / "first")
    assert first.returncode == 0, first.stderr[-3000:]

    # The steps a runner ran; the caches are GitHub's (actions/cache) and are not run.
    assert first.steps == {
        "Plan the install": "ran",
        "Restore the pip cache and the llama.cpp wheel": "not run",
        "Install model-release": "replaced",
        "Pin the Hub downloads": "ran",
        "Restore the Hugging Face cache": "not run",
        "Run model-release": "ran",
    }
    plan = first.step_outputs["plan"]
    assert plan["llama"] == "true" and "-DGGML_NATIVE=OFF" in plan["llama-flags"]
    assert plan["pip-key"].startswith("model-release-pip-Linux-X64-py3.")
    pinned = f"base {BASE_ID} main {sources['base']}\nadapter {ADAPTER_ID} main "
    assert pinned + sources["adapter"] in first.stdout
    cache_key = first.step_outputs["sources"]["key"]
    assert cache_key.startswith("model-release-hf-")

    # The Hub: one release commit on main, tagged v1.0.0, holding the weights and card.
    repo = hub.repo(REPO_ID)
    head = repo.branches["main"]
    assert repo.tags == {"v1.0.0": head}
    files = repo.files(head)
    assert {"model.safetensors", "config.json", "README.md"} <= set(files)
    assert first.outputs["commit"] == head
    assert first.outputs["model-url"].endswith(f"/{REPO_ID}")
    assert first.outputs["card-lint"] in ("passed", "warnings")

    # The summary and the log: every stage done with its time, each in a folded group.
    for stage in ("adapter", "merge", "evaluate", "gguf", "card", "push"):
        assert f"| {stage} | ✅ done |" in first.summary
    assert first.stdout.count("::group::") == first.stdout.count("::endgroup::") >= 6
    assert "::group::Merge (merge)" in first.stdout

    # Pinned: the manifest, the published card and the GGUF header name both commits.
    manifest = Manifest.load(tmp_path / "first" / "repo" / "build" / "manifest.json")
    intake = AdapterFacts.of(manifest)
    assert (intake.base_commit, intake.adapter_commit) == (
        sources["base"],
        sources["adapter"],
    )
    card = hub.read(REPO_ID, "README.md").decode()
    assert sources["base"] in card and f"{ADAPTER_ID}@{sources['adapter']}" in card
    assert (
        gguf_strings(tmp_path / "first" / "repo" / "build" / "gguf")
        >= {
            "model_release.base.commit": sources["base"],
            "model_release.adapter.repo_id": ADAPTER_ID,
            "model_release.adapter.commit": sources["adapter"],
        }.items()
    )

    # GitHub's "Re-run jobs" after the release: a fresh runner builds the same release
    # again (other timings in its manifest) and finds it published; nothing moves.
    published = hub.repo(REPO_ID)
    manifest = hub.read(REPO_ID, RELEASE_MANIFEST)
    again, _ = tag_push(tmp_path / "again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert hub.repo(REPO_ID) == published
    assert hub.read(REPO_ID, RELEASE_MANIFEST) == manifest
    rebuilt = tmp_path / "again" / "repo" / "build" / "push" / "manifest.json"
    assert rebuilt.read_bytes() != manifest, "the rerun measured its own timings"
    assert again.outputs["commit"] == published.tags["v1.0.0"] == first.outputs["commit"]
    assert again.outputs["model-url"] == first.outputs["model-url"]
    assert "| push | ✅ done |" in again.summary
    assert "released-before" in again.summary
    assert "Already published: v1.0.0 on the Hub holds this release; nothing to do." in (
        again.summary
    )
    assert f"{REPO_ID}: v1.0.0 is already published with these files" in again.stdout

    # The next release (v1.0.1, same base and adapter) on a fresh runner whose Hugging
    # Face cache was restored under the same key (this test's HF_HOME): no download.
    since = len(hub.requests)
    second, second_seconds = tag_push(tmp_path / "second", "1.0.1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.step_outputs["sources"]["key"] == cache_key
    assert [p for p in downloads(hub, since) if BASE_ID in p or ADAPTER_ID in p] == []
    after = hub.repo(REPO_ID)
    assert after.tags == {"v1.0.0": head, "v1.0.1": after.branches["main"]}
    assert after.commits[after.branches["main"]]["parent"] == head
    with capsys.disabled():
        print(f"\naction tag push: first run {first_seconds:.1f} s, second {second_seconds:.1f} s")


def gguf_strings(folder: Path) -> set[tuple[str, str]]:
    """The string fields of the GGUF files in ``folder``, read with gguf-py."""
    import gguf

    found: set[tuple[str, str]] = set()
    for path in folder.glob("*.gguf"):
        for name, value in gguf.GGUFReader(path).fields.items():
            if value.types == [gguf.GGUFValueType.STRING]:
                found.add((name, value.contents()))
    return found


def test_a_dry_run_builds_everything_and_pushes_nothing(hub, sources, tmp_path):
    run, _ = tag_push(tmp_path, **{"dry-run": "true"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "push" not in {line.split("|")[1].strip() for line in table(run.summary)}
    assert run.outputs["commit"] == "" and run.outputs["model-url"] == ""
    with pytest.raises(HubHTTPError):  # the Hub has no such repo
        hub.repo(REPO_ID)
    assert (tmp_path / "repo" / "build" / "merge" / "model.safetensors").is_file()


def table(summary: str) -> list[str]:
    return [line for line in summary.splitlines() if line.startswith("| ") and "---" not in line]


def test_a_missing_adapter_repo_fails_the_step_in_one_line(hub, sources, tmp_path):
    repo = checkout(tmp_path / "repo")
    (repo / "release.yaml").write_text(RELEASE_YAML.replace(ADAPTER_ID, "trainer/gone"))
    failed = run_action(repo, tmp_path / "runner-temp", {"hf-token": CANARY_TOKEN})
    assert failed.steps["Pin the Hub downloads"] == "failed"
    assert "Run model-release" not in failed.steps
    assert failed.returncode == 2
    assert "adapter.repo_id: no repo trainer/gone on the Hub" in failed.stderr
    assert CANARY_TOKEN not in failed.stdout + failed.stderr
