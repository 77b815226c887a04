"""Put one planned repo on the Hub: one commit with every file, then the tag.

How it works, and why a rerun is always safe:

1. ``create_repo(exist_ok=True)``, then read the repo's refs.
2. If the release tag exists, the release was published before: when the tagged commit
   holds exactly the planned files, there is nothing to do; otherwise refuse (a
   published tag is never moved: bump the version).
3. Compare the head of ``main`` with the plan, file by file: LFS files by sha256, small
   files by git blob id, the release manifest by what it says of the release (the same
   release built again on a fresh runner has other timings: ``Manifest.release_sha256``).
   Files that already match are not sent again; weights the plan does not hold
   (``model-00002-of-00002.safetensors`` from an older release, say) are deleted in the
   same commit.
4. One ``create_commit`` with all the changes and ``parent_commit`` = the head read in
   step 3, so a concurrent push is refused instead of silently mixed in. The Hub applies
   a commit whole or not at all: a push that fails midway leaves ``main`` as it was,
   with the LFS objects already uploaded kept server side, so the rerun sends only what
   is missing.
5. Tag that commit. With ``create_pr`` the commit opens a pull request instead (an open
   one holding the same files is reused); the tag waits until ``main`` holds the
   release, i.e. a rerun after the pull request is merged.

Steps 2 and 3 only read (``outlook``): the dry run asks the same question, so what it
says a push would do is what the push does.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from cards.evals import EVAL_RESULTS_DIR
from release.core.errors import WorkError
from release.core.events import Event, Reporter
from release.core.manifest import release_sha256_of
from release.core.units import human
from release.hub.facts import RepoResult, Status
from release.hub.plan import PlannedFile, RepoPlan

if TYPE_CHECKING:
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.hf_api import GitRefInfo, GitRefs, RepoFile

BRANCH = "main"
STALE = ("*.safetensors", "*.safetensors.index.json", "*.gguf", "*.bin", f"{EVAL_RESULTS_DIR}/*")
"""Files a release replaces: kept on the Hub, an older release's extra shard would sit
next to the new weights, and its eval results would be shown as this release's."""

BUMP_HINT = "bump `version` in release.yaml to publish these files"

Action = Literal["released-before", "tag-conflict", "unchanged", "pull-request", "commit"]


@dataclass(frozen=True)
class Outlook:
    """What a push of one repo would do, as the Hub stands now (steps 2 and 3).

    ``commit`` is the tagged commit (released-before, tag-conflict), the head of main
    (unchanged, commit) or of the reusable pull request; None for a repo not on the Hub.
    """

    action: Action
    commit: str | None
    upload: list[PlannedFile]
    delete: list[str]
    pull_request: str | None = None


def push_repo(
    api: HfApi,
    report: Reporter,
    repo: RepoPlan,
    additions: dict[str, CommitOperationAdd],
    *,
    stale: tuple[str, ...] = STALE,
) -> Generator[Event, None, RepoResult]:
    """Steps 1-5 above for one repo; yields log events, returns what happened.

    ``stale``: patterns of the Hub's files the plan replaces (deleted when the plan does
    not hold them); ``()`` for a plan that updates only some files, such as a card.
    """
    repo_id = repo.repo_id
    with hub_errors(repo_id, "create the repo"):
        api.create_repo(repo_id, private=repo.private, exist_ok=True)
        refs = api.list_repo_refs(repo_id, include_pull_requests=repo.create_pr)
    url = f"{api.endpoint}/{repo_id}"

    def result(status: Status, commit: str, tag: str | None = None, **more: Any) -> RepoResult:
        more = {"pull_request": None, "uploaded": [], "deleted": [], **more}
        return RepoResult(
            role=repo.role, repo_id=repo_id, status=status, commit=commit, url=url, tag=tag, **more
        )

    seen = outlook(api, repo, refs, stale)
    assert seen.commit is not None  # the repo exists now
    if seen.action == "tag-conflict":
        raise WorkError(
            f"{repo_id}: {tag_conflict(repo, seen)}",
            hint=BUMP_HINT,
        )
    if seen.action == "released-before":
        yield report.log(f"{repo_id}: {repo.tag} is already published with these files")
        return result("released-before", seen.commit, repo.tag)

    commit, pull_request, uploaded = seen.commit, seen.pull_request, []
    status: Status = "pull-request" if seen.action == "pull-request" else "unchanged"
    if seen.action == "unchanged":
        yield report.log(f"{repo_id}: {BRANCH} already holds every file of the release")
    elif seen.action == "pull-request":
        yield report.log(f"{repo_id}: pull request {pull_request} already holds the release")
    else:
        yield report.log(f"{repo_id}: {commit_summary(repo, seen)}")
        report.check_cancelled()
        info = _commit(api, repo, additions, seen.upload, seen.delete, parent=seen.commit)
        commit, status = info.oid, "committed"
        uploaded = [f.path_in_repo for f in seen.upload]
        if repo.create_pr:
            status, pull_request = "pull-request", info.pr_url
            yield report.log(f"{repo_id}: opened {info.pr_url}")
    tag = None
    if repo.tag and status != "pull-request":
        with hub_errors(repo_id, f"create the tag {repo.tag}"):
            api.create_tag(repo_id, tag=repo.tag, revision=commit, tag_message=repo.commit_message)
        tag = repo.tag
        yield report.log(f"{repo_id}: tagged {commit[:12]} as {repo.tag}")
    elif repo.tag:
        yield report.log(f"{repo_id}: to tag {repo.tag}, rerun the push once the PR is merged")
    more = {"pull_request": pull_request, "uploaded": uploaded, "deleted": seen.delete}
    return result(status, commit, tag, **more)


def outlook(
    api: HfApi, repo: RepoPlan, refs: GitRefs | None, stale: tuple[str, ...] = STALE
) -> Outlook:
    """Steps 2 and 3 for ``repo`` given the Hub's ``refs`` of it (None: no such repo).
    Only reads."""
    if refs is None:
        return Outlook("commit", None, list(repo.files), [])
    tagged = _find(refs.tags, repo.tag)
    if tagged is not None:
        upload, delete = _changes(api, repo, tagged.target_commit, stale)
        action: Action = "tag-conflict" if upload or delete else "released-before"
        return Outlook(action, tagged.target_commit, upload, delete)
    head = _find(refs.branches, BRANCH)
    if head is None:
        raise WorkError(f"{repo.repo_id}: the repo has no {BRANCH} branch")
    upload, delete = _changes(api, repo, head.target_commit, stale)
    if not upload and not delete:
        return Outlook("unchanged", head.target_commit, [], [])
    if repo.create_pr and (opened := _open_pull_request(api, repo, refs.pull_requests, stale)):
        return Outlook("pull-request", opened.target_commit, [], [], opened.name)
    return Outlook("commit", head.target_commit, upload, delete)


def tag_conflict(repo: RepoPlan, seen: Outlook) -> str:
    differ = [*(f.path_in_repo for f in seen.upload), *seen.delete]
    named = ", ".join(differ[:3]) + (", …" if len(differ) > 3 else "")
    return (
        f"tag {repo.tag} already exists and holds other files ({len(differ)} differ: "
        f"{named}); a published tag is never moved"
    )


def commit_summary(repo: RepoPlan, seen: Outlook) -> str:
    """What the commit of ``seen`` sends, e.g. "one commit uploading 3 files (2.1 MB)"."""
    size = human(sum(f.size for f in seen.upload), "bytes")
    return (
        f"one commit uploading {len(seen.upload)} files ({size})"
        + (f", deleting {len(seen.delete)}" if seen.delete else "")
        + f"; {len(repo.files) - len(seen.upload)} already on the Hub"
    )


def _find(refs: list[GitRefInfo], name: str | None) -> GitRefInfo | None:
    return next((ref for ref in refs if ref.name == name), None) if name else None


def _changes(
    api: HfApi, repo: RepoPlan, revision: str, stale: tuple[str, ...]
) -> tuple[list[PlannedFile], list[str]]:
    """Planned files the revision lacks or holds otherwise, and stale files to delete."""
    from huggingface_hub.hf_api import RepoFile

    with hub_errors(repo.repo_id, f"list the files of {revision[:12]}"):
        tree = api.list_repo_tree(repo.repo_id, revision=revision, recursive=True)
        remote = {item.path: item for item in tree if isinstance(item, RepoFile)}
    upload = [
        f
        for f in repo.files
        if not _same(remote.get(f.path_in_repo), f)
        and not _same_release(api, repo.repo_id, revision, remote.get(f.path_in_repo), f)
    ]
    planned = {f.path_in_repo for f in repo.files}
    delete = sorted(
        path
        for path in remote
        if path not in planned and any(fnmatch.fnmatch(path, p) for p in stale)
    )
    return upload, delete


def _same(remote: RepoFile | None, planned: PlannedFile) -> bool:
    if remote is None or remote.size != planned.size:
        return False
    if remote.lfs is not None:
        return remote.lfs.sha256 == planned.sha256
    return remote.blob_id == _git_blob_id(planned)


def _same_release(
    api: HfApi, repo_id: str, revision: str, remote: RepoFile | None, planned: PlannedFile
) -> bool:
    """Whether the Hub's release manifest says the release ``planned`` says, though its
    bytes differ: the same release built again on another runner, whose timings and
    machine figures are its own (``release.core.manifest.RUN_ONLY_FIELDS``)."""
    if remote is None or planned.release_sha256 is None:
        return False
    with hub_errors(repo_id, f"read {remote.path} of {revision[:12]}"):
        path = api.hf_hub_download(repo_id, remote.path, revision=revision)
    with open(path, "rb") as published:
        return release_sha256_of(published.read()) == planned.release_sha256


def _git_blob_id(planned: PlannedFile) -> str:
    """The id git gives the file's content (how the Hub names files not stored in LFS)."""
    digest = hashlib.sha1(b"blob %d\0" % planned.size)
    digest.update(planned.local.read_bytes())
    return digest.hexdigest()


def _open_pull_request(
    api: HfApi, repo: RepoPlan, pull_requests: list[GitRefInfo] | None, stale: tuple[str, ...]
) -> GitRefInfo | None:
    for ref in pull_requests or []:
        upload, delete = _changes(api, repo, ref.target_commit, stale)
        if not upload and not delete:
            return ref
    return None


def _commit(
    api: HfApi,
    repo: RepoPlan,
    additions: dict[str, CommitOperationAdd],
    upload: list[PlannedFile],
    delete: list[str],
    *,
    parent: str,
):
    from huggingface_hub import CommitOperationDelete

    operations = [
        *(additions[f.path_in_repo] for f in upload),
        *(CommitOperationDelete(path) for path in delete),
    ]
    with hub_errors(repo.repo_id, "commit the release"):
        return api.create_commit(
            repo.repo_id,
            operations,
            commit_message=repo.commit_message,
            commit_description=repo.commit_description,
            create_pr=repo.create_pr,
            parent_commit=parent,
        )


_HINTS = {
    401: "the Hub did not accept the token: set HF_TOKEN or run `hf auth login`",
    403: "the token cannot write there: use a token with write access to the repo's owner",
    412: "someone pushed to the repo meanwhile: rerun to push on top of their commit",
}
RETRY_HINT = "rerun the push: what was uploaded is kept, and the release completes"
NETWORK_HINT = f"check the network; {RETRY_HINT}"


@contextlib.contextmanager
def hub_errors(repo_id: str, action: str) -> Iterator[None]:
    """Turn huggingface_hub's errors into one WorkError line that says what to do."""
    from huggingface_hub.errors import HfHubHTTPError

    # The HTTP library's base error (httpx's, under whatever name the installed
    # huggingface_hub uses): connection refused, timeouts, TLS failures.
    transport_errors = tuple(base for base in HfHubHTTPError.__bases__ if base is not OSError)
    try:
        yield
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise WorkError(
            f"{repo_id}: could not {action}: {_reason(exc)}",
            hint=_HINTS.get(status or 0, RETRY_HINT),
        ) from exc
    except (RuntimeError, ValueError) as exc:
        # RuntimeError: an LFS upload that failed after its retries; ValueError: the
        # Hub refused the card's metadata or an LFS object.
        reason = _reason(exc)
        if isinstance(exc.__cause__, HfHubHTTPError):
            reason = f"{reason.rstrip('.')}: {_reason(exc.__cause__)}"
        message = f"{repo_id}: could not {action}: {reason}"
        raise WorkError(message, hint=RETRY_HINT) from exc
    except transport_errors as exc:
        raise WorkError(f"{repo_id}: could not {action}: {exc}", hint=NETWORK_HINT) from exc


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "server_message", None) or str(exc)
    return message.strip().splitlines()[0] if message.strip() else type(exc).__name__
