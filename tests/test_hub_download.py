"""A base and an adapter given by Hub repo id: downloaded by the real huggingface_hub
client from the local Hub (tests/support/hub_server.py), pinned to the commit they resolved to,
and refused in one line when the repo, the revision or the access is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from release.core.errors import InputError
from release.core.events import Log, StageFinished
from release.core.files import sha256_file
from release.core.manifest import Manifest
from release.runner import run_release
from release.spec.schema import ReleaseSpec
from tests.support.hub_fixtures import upload_folder
from tests.support.hub_server import FakeHub

BASE_ID = "acme/tiny-base"
ADAPTER_ID = "trainer/tiny-lora"


def hub_spec(tmp_path: Path, **sections: dict) -> ReleaseSpec:
    base = {"repo_id": BASE_ID, **sections.pop("base", {})}
    adapter = {"repo_id": ADAPTER_ID, **sections.pop("adapter", {})}
    return ReleaseSpec.model_validate(
        {
            "name": "tiny",
            "version": "1.0.0",
            "workspace": str(tmp_path / "build"),
            "base": base,
            "adapter": adapter,
            **sections,
        }
    )


@pytest.fixture
def on_hub(hub, tiny_llama_dir, tiny_adapter) -> dict[str, str]:
    """The base (with a pickle beside its safetensors, which must never be fetched) and
    the adapter on the local Hub; their commits."""
    return {
        "base": upload_folder(hub, BASE_ID, tiny_llama_dir, **{"pytorch_model.bin": b"pickle"}),
        "adapter": upload_folder(hub, ADAPTER_ID, tiny_adapter),
    }


def downloaded(hub: FakeHub, since: int = 0) -> list[str]:
    return [r.path for r in hub.requests[since:] if r.route in ("resolve", "cdn")]


def test_base_and_adapter_from_the_hub_are_pinned_by_commit(
    hub, on_hub, tiny_llama_dir, tiny_adapter, tmp_path
):
    spec = hub_spec(tmp_path)
    events = list(run_release(spec, only=["adapter"]))
    facts = next(e.facts for e in events if isinstance(e, StageFinished))
    assert facts["base_commit"] == on_hub["base"] == hub.repo(BASE_ID).branches["main"]
    assert facts["adapter_commit"] == on_hub["adapter"]
    assert facts["adapter_repo_id"] == ADAPTER_ID and facts["adapter_revision"] is None
    logs = [e.message for e in events if isinstance(e, Log)]
    assert f"base {BASE_ID} at commit {on_hub['base']}" in logs
    # The pickle was never fetched; every file came at the resolved commit.
    paths = downloaded(hub)
    assert not any(path.endswith(".bin") for path in paths)
    resolves = [p for p in paths if "/resolve/" in p]
    assert resolves and all(f"/resolve/{on_hub['base']}/" in p for p in resolves if BASE_ID in p)
    staged = spec.workspace / "adapter" / "adapter_model.safetensors"
    assert staged.read_bytes() == (tiny_adapter / "adapter_model.safetensors").read_bytes()

    # The owner pushes a new base to main; the merge still reads the pinned commit.
    moved = upload_folder(hub, BASE_ID, tiny_llama_dir, **{"notes.txt": b"v2"})
    assert hub.repo(BASE_ID).branches["main"] == moved != on_hub["base"]
    since = len(hub.requests)
    list(run_release(spec, only=["merge"]))
    assert not any(moved in r.path for r in hub.requests[since:])
    merged = load_file(spec.workspace / "merge" / "model.safetensors")
    assert merged.keys() == load_file(tiny_llama_dir / "model.safetensors").keys()

    # A rerun keeps the pinned commit, and says that main moved.
    moved_note = (
        f"base.revision: {BASE_ID} the default branch now resolves to commit {moved[:12]}, "
        f"the last run used {on_hub['base'][:12]}; set base.revision: {on_hub['base']} to "
        "repeat that run"
    )
    events = list(run_release(spec, only=["adapter"]))
    assert [type(e).__name__ for e in events] == ["Log", "StageSkipped"]
    assert events[0].level == "warning"
    assert events[0].message == f"{moved_note} (kept: --force adapter takes the new commit)"
    # Forced, intake resolves main anew, and says so again.
    events = list(run_release(spec, only=["adapter"], force=["adapter"]))
    warnings = [e.message for e in events if isinstance(e, Log) and e.level == "warning"]
    assert warnings == [moved_note]


def test_a_pinned_revision_downloads_that_commit(hub, on_hub, tiny_llama_dir, tmp_path):
    upload_folder(hub, BASE_ID, tiny_llama_dir, **{"config.json": b"{}"})  # main moves on
    spec = hub_spec(tmp_path, base={"revision": on_hub["base"]})
    facts = next(
        e.facts for e in run_release(spec, only=["adapter"]) if isinstance(e, StageFinished)
    )
    assert facts["base_commit"] == on_hub["base"]


@pytest.mark.parametrize(
    ("sections", "prepare", "expected"),
    [
        (
            {"adapter": {"repo_id": "trainer/nope"}},
            None,
            "adapter.repo_id: no repo trainer/nope on the Hub that this token can read "
            "(check the id, and that HF_TOKEN's account can read that repo)",
        ),
        (
            {"adapter": {"revision": "v9"}},
            None,
            "adapter.revision: trainer/tiny-lora has no revision 'v9' "
            "(use a branch, tag or commit sha of that repo)",
        ),
        (
            {},
            lambda hub: hub.gate(BASE_ID),
            "base.repo_id: acme/tiny-base is gated and this token has no access to it "
            "(accept its terms at {endpoint}/acme/tiny-base with the account of HF_TOKEN)",
        ),
    ],
    ids=["missing repo", "missing revision", "gated"],
)
def test_hub_sources_are_refused_in_one_line(hub, on_hub, tmp_path, sections, prepare, expected):
    if prepare:
        prepare(hub)
    spec = hub_spec(tmp_path, **sections)
    with pytest.raises(InputError) as caught:
        list(run_release(spec, only=["adapter"]))
    assert str(caught.value) == expected.format(endpoint=hub.url)
    assert not (spec.workspace / "adapter").exists()


def test_a_private_adapter_without_a_token_says_to_set_one(
    hub, on_hub, tiny_adapter, tmp_path, monkeypatch
):
    private = "trainer/private-lora"
    upload_folder(hub, private, tiny_adapter, private=True)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(InputError) as caught:
        list(run_release(hub_spec(tmp_path, adapter={"repo_id": private}), only=["adapter"]))
    assert str(caught.value) == (
        f"adapter.repo_id: no repo {private} on the Hub that this token can read "
        "(check the id; for a private repo set HF_TOKEN or run `hf auth login`)"
    )


def test_a_dropped_download_resumes_with_a_range(hub, on_hub, tiny_llama_dir):
    """The connection drops near the end of the weights; the client asks for the rest,
    from the last chunk it wrote."""
    from huggingface_hub import constants, hf_hub_download

    weights = (tiny_llama_dir / "model.safetensors").read_bytes()
    assert len(weights) > constants.DOWNLOAD_CHUNK_SIZE + 1000
    hub.cut_download(after=len(weights) - 1000)
    path = hf_hub_download(BASE_ID, "model.safetensors", endpoint=hub.url)
    assert Path(path).read_bytes() == weights
    first, second = [r for r in hub.requests if r.route == "cdn"]
    assert first.range is None and second.status == 206
    assert second.range == f"bytes={constants.DOWNLOAD_CHUNK_SIZE}-"
    assert second.authorization is None  # the token stays on the Hub, never sent to the CDN


def test_the_spec_takes_one_adapter_source(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        hub_spec(tmp_path, adapter={"path": str(tmp_path)})
    with pytest.raises(ValueError, match=r"adapter\.revision needs adapter\.repo_id"):
        ReleaseSpec.model_validate(
            {
                "name": "x",
                "version": "1",
                "base": {"repo_id": BASE_ID},
                "adapter": {"path": str(tmp_path), "revision": "main"},
            }
        )


def test_a_hub_cache_blob_is_keyed_by_its_name_without_reading_it(tmp_path):
    """A base given as a path into the Hugging Face cache (a snapshot folder): the blob's
    name is taken as the file's sha256, so a 60 GB base is not read to key the merge; a
    file outside the cache, or a small git-stored blob, is read and hashed. (A base given
    by repo_id is keyed by its pinned commit and never hashed.)"""
    named = "ab" * 32
    blob = tmp_path / "models--acme--big" / "blobs" / named
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"weights")
    snapshot = tmp_path / "models--acme--big" / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(blob)
    git_blob = blob.parent / ("d" * 40)
    git_blob.write_bytes(b"{}")
    elsewhere = tmp_path / "model.safetensors"
    elsewhere.write_bytes(b"weights")

    manifest = Manifest(name="big", version="1")
    assert manifest.hash_file(snapshot / "model.safetensors") == named
    assert manifest.hash_file(git_blob) == sha256_file(git_blob)
    assert manifest.hash_file(elsewhere) == sha256_file(elsewhere) != named
