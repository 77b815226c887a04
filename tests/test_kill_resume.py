"""Kill and resume (issue #10): SIGKILL a real `model-release run` early, midway and late
in every stage, on the tiny random Llama with a real LoRA, pushing to the local Hub.

One workspace goes through every kill point in turn, each run resuming what the last
one left; a kill point whose stage an earlier kill let finish is reached with --force
(a forced rerun killed midway must keep the old outputs just as valid). After every
kill, nothing under a final name is partial (``tests.support.kill_harness``) and the next run
skips what the manifest recorded. The last run finishes; the release must then be byte
for byte the one an uninterrupted run made in another folder, on disk and on the Hub;
and the Hub token shows in no output and no file.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from release.core.errors import InputError
from release.core.manifest import MANIFEST_NAME, FileRecord, Manifest, StageRecord
from release.hub.plan import RELEASE_MANIFEST, release_manifest_bytes
from tests.conftest import TEST_CACHE
from tests.support.hub_fixtures import ADAPTER_REPO_ID, CANARY_TOKEN, GGUF_REPO_ID, REPO_ID
from tests.support.hub_server import FakeHub
from tests.support.kill_harness import (
    PUSH_MANIFEST,
    CliRun,
    KillPoint,
    check_nothing_partial,
    cli_env,
    final_files,
    load_manifest,
    run_cli,
)
from tests.support.secret_scan import Scan

STAGES = ("adapter", "merge", "evaluate", "gguf", "card", "push")
REPOS = (REPO_ID, GGUF_REPO_ID, ADAPTER_REPO_ID)
TAG = "v0.1.0"


def write_spec(root: Path, base: Path, adapter: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    spec = root / "release.yaml"
    spec.write_text(
        f"name: tiny-chat\nversion: 0.1.0\nbase:\n  path: {base}\n"
        f"adapter:\n  path: {adapter}\nmerge:\n  shard_size: 2MB\ngguf:\n  types: [f16]\n"
        "card:\n  summary: A tiny random Llama, killed and resumed.\n"
        f"push:\n  repo_id: {REPO_ID}\n  gguf_repo_id: {GGUF_REPO_ID}\n"
        f"  adapter_repo_id: {ADAPTER_REPO_ID}\n"
    )
    return spec


@dataclass(frozen=True)
class HubRepo:
    files: dict[str, str]  # path -> sha256, at main
    tags: dict[str, str]
    commits: int
    head: str
    published_manifest: dict


def hub_state(hub: FakeHub) -> dict[str, HubRepo]:
    state = {}
    for repo_id in REPOS:
        repo = hub.repo(repo_id)
        files = {path: entry.sha256 for path, entry in repo.files("main").items()}
        published = json.loads(hub.read(repo_id, RELEASE_MANIFEST))
        state[repo_id] = HubRepo(
            files, repo.tags, len(repo.commits), repo.branches["main"], published
        )
    return state


@dataclass(frozen=True)
class Reference:
    manifest: Manifest
    files: dict[str, FileRecord]
    progress: dict[str, int]
    hub: dict[str, HubRepo]


@pytest.fixture(scope="module")
def reference(tiny_llama_dir, tiny_qv_adapter, tmp_path_factory) -> Reference:
    """An uninterrupted run of the same release, in another folder, to its own Hub."""
    root = tmp_path_factory.mktemp("kill-reference")
    spec = write_spec(root / "release", tiny_llama_dir, tiny_qv_adapter)
    with FakeHub(root / "hub", CANARY_TOKEN) as server:
        env = cli_env(
            HF_HOME=str(root / "hf_home"),
            MODEL_RELEASE_CACHE=str(TEST_CACHE),
            HF_ENDPOINT=server.url,
            HF_TOKEN=CANARY_TOKEN,
        )
        run = run_cli(spec, env)
        assert run.returncode == 0, run.stderr
        state = hub_state(server)
    workspace = spec.parent / "build"
    assert [e["stage"] for e in run.of_type("stage_finished")] == list(STAGES)
    return Reference(load_manifest(workspace), final_files(workspace), run.progress_count(), state)


def kill_points(progress: dict[str, int]) -> list[KillPoint]:
    """Early, middle and late: the first, the middle and the last progress event."""
    points = []
    for stage in STAGES:
        count = progress[stage]
        assert count >= 3, f"{stage} reports {count} progress events; kill points need 3"
        points += [KillPoint(stage, n) for n in sorted({1, (count + 1) // 2, count})]
    return points


def landing(
    point: KillPoint,
    run: CliRun,
    before: Manifest | None,
    after: Manifest | None,
    unrecorded: set[str],
) -> str:
    """Where the SIGKILL sent at ``point`` landed, judged from what the run left."""
    if run.returncode == 0:
        return "the run finished first"
    old = before.stages.get(point.stage) if before else None
    new = after.stages.get(point.stage) if after else None
    if new is not None and new != old:
        return "after the stage was recorded"
    if point.stage in unrecorded:
        return "folder renamed, record not yet saved"
    return "inside the stage"


def test_killed_in_every_stage_resumes_to_the_same_release(
    reference, tiny_llama_dir, tiny_qv_adapter, tmp_path, hub
):
    spec = write_spec(tmp_path / "release", tiny_llama_dir, tiny_qv_adapter)
    workspace = spec.parent / "build"
    env = cli_env()
    outcomes: Counter[str] = Counter()
    scan = Scan(CANARY_TOKEN)

    def kill(point: KillPoint, force: tuple[str, ...] = ()) -> None:
        before = load_manifest(workspace)
        recorded = set(before.stages) if before else set()
        run = run_cli(spec, env, kill=point, force=force)
        scan.many(str(point), [run.stdout, run.stderr])
        assert run.killed or run.returncode == 0, f"{point}: exit {run.returncode}\n{run.stderr}"
        assert not run.of_type("stage_failed"), f"{point}: {run.of_type('stage_failed')}"
        # It resumed: each stage before the kill point that the manifest recorded (and
        # that was not forced) was skipped, not redone.
        skipped = {e["stage"] for e in run.of_type("stage_skipped")}
        earlier = set(STAGES[: STAGES.index(point.stage)]) - set(force)
        redone = recorded & earlier - skipped
        assert not redone, f"{point}: redid {sorted(redone)}"
        unrecorded = check_nothing_partial(workspace, reference.manifest)
        outcomes[landing(point, run, before, load_manifest(workspace), unrecorded)] += 1

    points = kill_points(reference.progress)
    for point in points:
        manifest = load_manifest(workspace)
        kill(point, force=(point.stage,) if manifest and point.stage in manifest.stages else ())
    # A forced rerun killed midway: the evaluation recorded before stays valid (its
    # checks take long enough for the kill to land inside them), and its staging folder,
    # which no later run of the stage clears, must not stay behind. Its facts are the
    # same when it does finish, so the pushed release stays current.
    forced = KillPoint("evaluate", (reference.progress["evaluate"] + 1) // 2)
    kill(forced, force=("evaluate",))
    # What kills leave, planted where a real kill rarely lands: a staging folder of a
    # recorded stage, replace_dir's old folder and atomic_open's temporary manifest.
    planted = [".partial-merge/model-00001-of-00003.safetensors", ".old-card/README.md"]
    for name in [*planted, ".manifest.json.k1ll3d.partial"]:
        (workspace / name).parent.mkdir(exist_ok=True)
        (workspace / name).write_bytes(b"half")

    final = run_cli(spec, env)
    assert final.returncode == 0, final.stderr
    scan.many("final run", [final.stdout, final.stderr])
    scan.files(workspace, hub.root)
    assert scan.leaks == []
    assert {e["stage"] for e in final.of_type("stage_skipped")} >= {"adapter", "merge"}
    print(f"\n{len(points) + 1} SIGKILLs at {', '.join(map(str, points))}, {forced} forced")
    print(f"landed: {dict(outcomes)}")

    # Leftover staging folders and temporary files were cleared, not merged in.
    hidden = sorted(p.name for p in workspace.iterdir() if p.name.startswith("."))
    assert hidden == [".lock", ".model-release-workspace"]  # the run's lock, the marker
    assert check_nothing_partial(workspace, reference.manifest) == set()

    # Byte for byte the uninterrupted run's release.
    manifest = load_manifest(workspace)
    files = final_files(workspace)
    assert files.pop(PUSH_MANIFEST).sha256 == _sha256(release_manifest_bytes(manifest))
    expected = dict(reference.files)
    expected.pop(PUSH_MANIFEST)
    assert files == expected
    for stage in STAGES[:-1]:
        assert manifest.stages[stage].outputs == reference.manifest.stages[stage].outputs, stage

    # The Hub holds the same files, in one commit per repo, under one tag.
    for repo_id, got in hub_state(hub).items():
        want = reference.hub[repo_id]
        assert set(got.files) == set(want.files), repo_id
        for path, sha256 in got.files.items():
            if path != RELEASE_MANIFEST:
                assert sha256 == want.files[path], f"{repo_id}: {path}"
        assert _outputs(got.published_manifest) == _outputs(want.published_manifest), repo_id
        assert got.tags == {TAG: got.head}, repo_id
        assert got.commits == want.commits, repo_id


def _outputs(published: dict) -> dict[str, list]:
    return {name: record["outputs"] for name, record in published["stages"].items()}


def _sha256(content: bytes) -> str:
    import hashlib

    return hashlib.sha256(content).hexdigest()


def test_the_check_catches_a_partial_file_under_a_final_name(tmp_path):
    workspace = tmp_path / "build"
    shard = workspace / "merge" / "model.safetensors"
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"x" * 1000)
    manifest = Manifest(name="t", version="1")
    outputs = [manifest.record(shard, relative_to=workspace)]
    manifest.stages["merge"] = StageRecord(key="k", finished_at="", seconds=0, outputs=outputs)
    manifest.save(workspace / MANIFEST_NAME)
    reference = manifest.model_copy(deep=True)
    staging = workspace / ".partial-gguf" / "tiny.gguf"
    staging.parent.mkdir()
    staging.write_bytes(b"half a file")  # not a final name
    assert check_nothing_partial(workspace, reference) == set()

    del manifest.stages["merge"]  # renamed into place, record not yet saved: complete
    manifest.save(workspace / MANIFEST_NAME)
    assert check_nothing_partial(workspace, reference) == {"merge"}

    shard.write_bytes(b"x" * 500)
    with pytest.raises(AssertionError, match=r"merge/model\.safetensors: under a final name"):
        check_nothing_partial(workspace, reference)
    (workspace / MANIFEST_NAME).write_text('{"name": "t", "vers')
    with pytest.raises(InputError, match="not a model-release manifest"):
        check_nothing_partial(workspace, reference)
