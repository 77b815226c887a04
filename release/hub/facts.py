"""What the push stage records in the manifest: what happened to each repo."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from release.core.facts import Facts, StageFacts

Status = Literal["committed", "pull-request", "unchanged", "released-before"]


class RepoResult(Facts):
    """What the push did to one repo: the push stage's facts hold one per repo."""

    role: str
    repo_id: str
    status: Status
    commit: str
    url: str
    tag: str | None
    pull_request: str | None
    uploaded: list[str]
    deleted: list[str]


class PushFacts(StageFacts):
    stage: ClassVar[str] = "push"

    repos: list[RepoResult] = Field(default_factory=list)
