"""The local Hub answers the real huggingface_hub client the way the Hub does, errors
included: the push tests are only as good as this server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.hub_fixtures import CANARY_TOKEN


@pytest.fixture
def api(hub):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=CANARY_TOKEN)
    api.create_repo("me/model")
    return api


def test_lfs_and_regular_files_round_trip(hub, api, tmp_path):
    from huggingface_hub import CommitOperationAdd, hf_hub_download

    weights = bytes(range(256)) * 64
    info = api.create_commit(
        "me/model",
        [
            CommitOperationAdd("model.safetensors", weights),
            CommitOperationAdd("config.json", b"{}"),
        ],
        commit_message="add",
    )
    assert [r.route for r in hub.calls("lfs_upload")] == ["lfs_upload"]
    tree = {f.path: f for f in api.list_repo_tree("me/model", recursive=True)}
    assert tree["model.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    assert tree["config.json"].lfs is None
    assert tree["config.json"].blob_id == hashlib.sha1(b"blob 2\0{}").hexdigest()
    path = hf_hub_download(
        "me/model", "model.safetensors", revision=info.oid, endpoint=hub.url, cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == weights


def test_stale_parent_commit_is_refused(api):
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    parent = api.list_repo_refs("me/model").branches[0].target_commit
    api.create_commit("me/model", [CommitOperationAdd("a.txt", b"a")], commit_message="a")
    with pytest.raises(HfHubHTTPError) as error:
        api.create_commit(
            "me/model",
            [CommitOperationAdd("b.txt", b"b")],
            commit_message="b",
            parent_commit=parent,
        )
    assert error.value.response.status_code == 412
    assert "b.txt" not in api.list_repo_files("me/model")


def test_a_tag_is_created_once(api):
    from huggingface_hub.errors import HfHubHTTPError

    api.create_tag("me/model", tag="v1")
    with pytest.raises(HfHubHTTPError) as error:
        api.create_tag("me/model", tag="v1")
    assert error.value.response.status_code == 409


def test_pull_request_commits_leave_main_alone(hub, api):
    from huggingface_hub import CommitOperationAdd

    info = api.create_commit(
        "me/model", [CommitOperationAdd("a.txt", b"a")], commit_message="a", create_pr=True
    )
    assert info.pr_num == 1
    assert "a.txt" not in api.list_repo_files("me/model")
    assert "a.txt" in api.list_repo_files("me/model", revision=info.pr_revision)


def test_invalid_card_metadata_is_refused(api):
    from huggingface_hub import CommitOperationAdd

    card = b"---\nlicense: [\n---\n# card\n"
    with pytest.raises(ValueError, match=r"Invalid metadata in README\.md"):
        api.create_commit(
            "me/model", [CommitOperationAdd("README.md", card)], commit_message="card"
        )


def test_a_wrong_token_is_refused(hub):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as error:
        HfApi(endpoint=hub.url, token="hf_wrong").create_repo("me/other")
    assert error.value.response.status_code == 401


def test_injected_failures_count_down(hub, api):
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    hub.fail("commit", 403, after=1)
    api.create_commit("me/model", [CommitOperationAdd("a.txt", b"a")], commit_message="1")
    with pytest.raises(HfHubHTTPError):
        api.create_commit("me/model", [CommitOperationAdd("b.txt", b"b")], commit_message="2")
    api.create_commit("me/model", [CommitOperationAdd("c.txt", b"c")], commit_message="3")
    assert [r.status for r in hub.calls("commit")] == [200, 403, 200]
