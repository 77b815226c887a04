"""What the Hub already holds of a push plan: the dry run's view of what a push would do.

Read-only calls (``list_repo_refs``, ``list_repo_tree``), with the token when there is
one, so a private repo is seen as its owner sees it. The verdict for each repo is the
push's own (``release.hub.commit.outlook``), so the dry run and the push cannot
disagree: a tag that exists with the planned files is "nothing to push", as the push
then reports "released-before". A Hub that cannot be reached is one line, not an
error: the plan of files stands without it.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from release.core.errors import StageError
from release.core.files import atomic_write_bytes
from release.core.units import human
from release.hub.commit import (
    BRANCH,
    NETWORK_HINT,
    Outlook,
    commit_summary,
    hub_errors,
    outlook,
    tag_conflict,
)
from release.hub.plan import PushPlan, RepoPlan

if TYPE_CHECKING:
    from huggingface_hub import HfApi


def hub_lines(plan: PushPlan, api: HfApi | None = None) -> dict[str, str]:
    """One line per repo id of ``plan``: what a push would do, as the Hub stands now.
    Redacted: a refusing Hub may echo the token back in the message a line quotes."""
    from release.core.redact import redact

    return {repo_id: redact(line) for repo_id, line in _hub_lines(plan, api).items()}


def _hub_lines(plan: PushPlan, api: HfApi | None) -> dict[str, str]:
    if api is None:
        from release.hub.api import hub_api

        api = hub_api(token_required=False)
    lines: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="model-release-plan-") as scratch:
        plan = _with_generated(plan, Path(scratch))
        for repo in plan.repos:
            try:
                lines[repo.repo_id] = describe(repo, _outlook(api, repo))
            except StageError as exc:
                reason = exc.message.removeprefix(f"{repo.repo_id}: ")
                if exc.hint != NETWORK_HINT:
                    lines[repo.repo_id] = reason
                    continue
                return _unreachable(plan, api, reason)
            except ConnectionError as exc:  # HF_HUB_OFFLINE=1
                return _unreachable(plan, api, str(exc))
    return lines


def _with_generated(plan: PushPlan, scratch: Path) -> PushPlan:
    """``plan`` with the files the push generates (the release manifest) written below
    ``scratch``: the dry run removed its copies, and small files compare by content."""
    written: dict[Path, Path] = {}
    for index, (path, content) in enumerate(plan.generated):
        written[path] = scratch / str(index) / path.name
        atomic_write_bytes(written[path], content)
    repos = tuple(
        replace(
            repo, files=tuple(replace(f, local=written.get(f.local, f.local)) for f in repo.files)
        )
        for repo in plan.repos
    )
    return PushPlan(repos, tuple((written[path], content) for path, content in plan.generated))


def _unreachable(plan: PushPlan, api: HfApi, reason: str) -> dict[str, str]:
    line = f"the Hub at {api.endpoint} cannot be reached ({reason}): not checked"
    return dict.fromkeys((repo.repo_id for repo in plan.repos), line)


def _outlook(api: HfApi, repo: RepoPlan) -> Outlook:
    from huggingface_hub.errors import RepositoryNotFoundError

    with hub_errors(repo.repo_id, "read the repo"):
        try:
            refs = api.list_repo_refs(repo.repo_id, include_pull_requests=repo.create_pr)
        except RepositoryNotFoundError:
            refs = None
        return outlook(api, repo, refs)


def describe(repo: RepoPlan, seen: Outlook) -> str:
    """What the push does with ``repo`` when the Hub stands as ``seen`` says."""
    at = seen.commit[:12] if seen.commit else ""
    waits = repo.create_pr and seen.action != "unchanged"  # as push_repo tags
    if not repo.tag:
        tagging = ""
    elif waits:
        tagging = f"; tag {repo.tag} once the pull request is merged"
    else:
        tagging = f", then tags it {repo.tag}"
    match seen.action:
        case "released-before":
            return f"tag {repo.tag} exists (released before at {at}): nothing to push"
        case "tag-conflict":
            return f"{tag_conflict(repo, seen)}: the push refuses; bump `version`"
        case "unchanged":
            return f"{BRANCH} already holds every file (at {at}): nothing to upload{tagging}"
        case "pull-request":
            return f"pull request {seen.pull_request} already holds every file{tagging}"
    if seen.commit is None:
        size = human(sum(f.size for f in seen.upload), "bytes")
        return (
            "no such repo (or not visible without a token): the push creates it and "
            f"uploads all {len(seen.upload)} files ({size}){tagging}"
        )
    return f"{commit_summary(repo, seen)}{tagging}"
