"""The few GitHub REST calls that following a workflow run needs, over one of two roads.

- ``gh api PATH`` when the GitHub CLI is installed and logged in (``gh auth status``):
  gh brings its own token and host settings;
- else plain HTTPS with a token from ``GITHUB_TOKEN`` or ``GH_TOKEN``, at
  ``$GITHUB_API_URL`` (what Actions and GitHub Enterprise set; default
  https://api.github.com).

``gh api`` prints the REST response itself, so both roads return the same JSON, read
here into typed records. The endpoints: ``GET /repos/{owner}/{repo}/actions/runs``
(``?head_sha=``), ``.../actions/runs/{id}`` and ``.../actions/runs/{id}/jobs``.
The token goes into the Authorization header and nowhere else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from release.core.errors import WorkError

API_URL = "https://api.github.com"
TOKEN_VARIABLES = ("GITHUB_TOKEN", "GH_TOKEN")
TOKEN_HINT = (
    "set GITHUB_TOKEN to a token that can read the repository's Actions, or run "
    "`gh auth login`; --no-follow skips following"
)

Get = Callable[[str], Any]
"""A road to the API: a path below the API root (with its query) -> the parsed JSON."""


@dataclass(frozen=True)
class GitHubRepo:
    owner: str
    name: str

    @property
    def slug(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def actions_url(self) -> str:
        return f"https://github.com/{self.slug}/actions"

    @classmethod
    def from_remote(cls, url: str) -> GitHubRepo | None:
        """The repository a git remote URL names on github.com; None for other hosts."""
        match = re.search(r"github\.com[:/]([^/]+)/(.+?)(?:\.git)?/?$", url)
        return cls(match[1], match[2]) if match else None


@dataclass(frozen=True)
class Run:
    """A workflow run. ``status``: queued, in_progress, completed (and waiting, pending,
    requested); ``conclusion`` once completed: success, failure, cancelled…"""

    id: int
    name: str
    status: str
    conclusion: str | None
    url: str
    head_branch: str | None


@dataclass(frozen=True)
class Job:
    name: str
    status: str
    conclusion: str | None


class RunsClient:
    """The Actions runs of one repository, through ``get`` (``gh_road`` or ``token_road``)."""

    def __init__(self, repo: GitHubRepo, get: Get, *, via: str) -> None:
        self.repo = repo
        self._get = get
        self.via = via
        """How it reaches GitHub, for a person: "the GitHub CLI" or "GITHUB_TOKEN"."""

    def runs_of(self, commit: str) -> list[Run]:
        """The runs GitHub started for ``commit``, newest first."""
        found = self._get(f"repos/{self.repo.slug}/actions/runs?head_sha={quote(commit)}")
        return [_run(item) for item in found.get("workflow_runs", [])]

    def run(self, run_id: int) -> Run:
        return _run(self._get(f"repos/{self.repo.slug}/actions/runs/{run_id}"))

    def jobs(self, run_id: int) -> list[Job]:
        found = self._get(f"repos/{self.repo.slug}/actions/runs/{run_id}/jobs")
        return [
            Job(item["name"], item["status"], item.get("conclusion"))
            for item in found.get("jobs", [])
        ]


def _run(item: dict[str, Any]) -> Run:
    return Run(
        id=item["id"],
        name=item.get("name") or item.get("display_title") or f"run {item['id']}",
        status=item["status"],
        conclusion=item.get("conclusion"),
        url=item["html_url"],
        head_branch=item.get("head_branch"),
    )


def connect(repo: GitHubRepo) -> RunsClient | None:
    """A client by the GitHub CLI when it is logged in, else by a token from the
    environment; None when there is neither."""
    if gh_ready():
        return RunsClient(repo, gh_road, via="the GitHub CLI")
    for variable in TOKEN_VARIABLES:
        token = os.environ.get(variable)
        if token:
            api_url = os.environ.get("GITHUB_API_URL", "").rstrip("/") or API_URL
            return RunsClient(repo, token_road(token, api_url), via=variable)
    return None


def gh_ready() -> bool:
    """Whether the GitHub CLI is installed and logged in to github.com."""
    if shutil.which("gh") is None:
        return False
    done = subprocess.run(
        ["gh", "auth", "status", "--hostname", "github.com"], capture_output=True, text=True
    )
    return done.returncode == 0


def gh_road(path: str) -> Any:
    done = subprocess.run(
        ["gh", "api", "-H", "Accept: application/vnd.github+json", path],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["(no output)"])[0]
        raise WorkError(f"GitHub: gh api {path.split('?')[0]}: {first}", hint=TOKEN_HINT)
    return json.loads(done.stdout)


def token_road(token: str, api_url: str) -> Get:
    headers = {
        "Accept": "application/vnd.github+json",
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "model-release",
    }

    def get(path: str) -> Any:
        url = f"{api_url}/{path}"
        shown = url.split("?")[0]
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=30
            ) as r:
                return json.load(r)
        except urllib.error.HTTPError as exc:
            raise WorkError(f"GitHub: GET {shown}: {_refusal(exc)}", hint=TOKEN_HINT) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WorkError(
                f"GitHub: could not reach {shown}: {reason}",
                hint="check the network; --no-follow skips following",
            ) from None

    return get


def _refusal(exc: urllib.error.HTTPError) -> str:
    """ "HTTP 401 Bad credentials": the status and GitHub's own message."""
    try:
        message = json.loads(exc.read()).get("message", "")
    except (ValueError, AttributeError, OSError):
        message = ""
    return f"HTTP {exc.code} {message or exc.reason}".strip()
