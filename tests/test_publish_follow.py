"""`model-release publish` follows the workflow run its tag push started.

The remote is a local bare repository behind a github.com URL (git's pushInsteadOf),
and GitHub's Actions API is tests/support/github_server.py on 127.0.0.1 ($GITHUB_API_URL): the
run for the tag appears a moment after the push, as on GitHub, and moves through its
states as it is read. The commit the client asks about is checked against what git says
the pushed tag names. No test needs GitHub.
"""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

from release.cli import main
from release.core.errors import WorkError
from release.publish.follow import follow_run
from release.publish.github_api import GitHubRepo, RunsClient, token_road
from tests.support.github_server import GitHubActions, GitHubServer, RunState
from tests.support.secret_scan import Scan, random_token
from tests.test_publish import (  # noqa: F401 (repo: the fixture)
    git,
    publish_in_the_wizard,
    remote,
    repo,
)

SLUG = "acme/tiny-release"
GITHUB_URL = f"https://github.com/{SLUG}.git"
TOKEN = random_token("ghp_")

SUCCESS = [
    RunState("queued"),
    RunState("in_progress", jobs=(("release", "in_progress", None),)),
    RunState("in_progress", jobs=(("release", "in_progress", None),)),
    RunState("completed", "success", jobs=(("release", "completed", "success"),)),
]


@pytest.fixture
def github(repo, tmp_path, monkeypatch):  # noqa: F811 (repo: the fixture)
    """The repository's remote at a github.com URL, the Actions API beside it, and a
    `gh` on PATH that is installed but not logged in."""
    git(repo, "remote", "set-url", "origin", GITHUB_URL)
    git(repo, "config", f"url.{tmp_path / 'remote.git'}.pushInsteadOf", GITHUB_URL)
    actions = GitHubActions(SLUG, TOKEN)
    with GitHubServer(actions) as served:
        monkeypatch.setenv("GITHUB_API_URL", served.url)
        monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns without a terminal
        for variable in ("GITHUB_TOKEN", "GH_TOKEN"):
            monkeypatch.delenv(variable, raising=False)
        bin_dir = tmp_path / "bin"
        _write_gh(bin_dir / "gh", served.url)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.setenv("GH_STAND_IN_LOG", str(tmp_path / "gh.log"))
        yield actions


def _write_gh(path: Path, api_url: str) -> None:
    """A stand-in for the GitHub CLI (not installable here): ``gh auth status`` succeeds
    when GH_STAND_IN_LOGGED_IN=1; ``gh api [-H H] PATH`` GETs PATH from the local API with
    the token gh would hold, prints the body as gh does, and fails as gh does on an HTTP
    error. Each call's arguments go to $GH_STAND_IN_LOG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""\
            import os, sys, urllib.error, urllib.request
            with open(os.environ["GH_STAND_IN_LOG"], "a") as log:
                log.write(" ".join(sys.argv[1:]) + "\\n")
            if sys.argv[1:3] == ["auth", "status"]:
                sys.exit(0 if os.environ.get("GH_STAND_IN_LOGGED_IN") == "1" else 1)
            assert sys.argv[1] == "api", sys.argv
            request = urllib.request.Request(
                "{api_url}/" + sys.argv[-1],
                headers={{"Authorization": "Bearer " + os.environ["GH_STAND_IN_TOKEN"]}},
            )
            try:
                sys.stdout.write(urllib.request.urlopen(request).read().decode())
            except urllib.error.HTTPError as exc:
                sys.exit(f"gh: {{exc.reason}} (HTTP {{exc.code}})")
            """
        )
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _tagged(repo: Path, tag: str = "v1.0.0") -> str:  # noqa: F811
    return remote(repo, "rev-parse", f"{tag}^{{commit}}")


def _script(actions: GitHubActions, repo: Path, timeline: list[RunState]) -> None:  # noqa: F811
    """The runs GitHub starts for the push: CI on the branch, the release on the tag;
    both show up one look after the first."""
    on_commit = dict(resolve_sha=lambda: _tagged(repo), appears_after=1)
    actions.add_run("CI", "main", [RunState("in_progress")], **on_commit)
    actions.add_run("Release", "v1.0.0", timeline, **on_commit)


def test_publish_follows_the_tags_run_with_a_token_to_success(
    github,
    repo,  # noqa: F811
    capsys,
    monkeypatch,
):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    _script(github, repo, SUCCESS)

    assert main(["publish", str(repo / "release.yaml"), "--interval", "0"]) == 0

    out, err = capsys.readouterr()
    commit = _tagged(repo)
    run_url = f"https://github.com/{SLUG}/actions/runs/1001"
    assert out.splitlines()[1:] == [
        f"pushed v1.0.0 ({commit[:12]}) to origin; following its workflow run",
        f"Release: {run_url} (followed through GITHUB_TOKEN)",
        "run queued",
        "run in_progress",
        "  job release: in_progress",
        "  job release: completed (success)",
        "run completed (success)",
        f"released v1.0.0: {run_url}",
    ]
    lists = [r for r in github.requests if r.path.endswith("/actions/runs")]
    assert len(lists) == 2 and all(r.query["head_sha"] == [commit] for r in lists)
    assert {r.authorization for r in github.requests} == {f"Bearer {TOKEN}"}
    scan = Scan(TOKEN)
    scan.many("output", [out, err])
    scan.files(repo)
    assert scan.leaks == []


def test_a_failed_run_fails_publish_with_the_runs_address(
    github,
    repo,  # noqa: F811
    capsys,
    monkeypatch,
):
    monkeypatch.setenv("GH_TOKEN", TOKEN)
    failed = RunState("completed", "failure", jobs=(("release", "completed", "failure"),))
    _script(github, repo, [RunState("in_progress"), failed])

    assert main(["publish", str(repo / "release.yaml"), "--interval", "0"]) == 1

    out, err = capsys.readouterr()
    assert "  job release: completed (failure)" in out
    assert err.startswith(
        "error: the release workflow run ended failure: "
        f"https://github.com/{SLUG}/actions/runs/1001 (read its log there;"
    )
    assert _tagged(repo) == git(repo, "rev-parse", "HEAD"), "the tag push itself stands"


def test_the_github_cli_is_used_when_it_is_logged_in(
    github,
    repo,  # noqa: F811
    capsys,
    monkeypatch,
    tmp_path,
):
    monkeypatch.setenv("GH_STAND_IN_LOGGED_IN", "1")
    monkeypatch.setenv("GH_STAND_IN_TOKEN", TOKEN)
    _script(github, repo, SUCCESS)

    assert main(["publish", str(repo / "release.yaml"), "--interval", "0"]) == 0

    out = capsys.readouterr().out
    assert "(followed through the GitHub CLI)" in out and "released v1.0.0" in out
    calls = (tmp_path / "gh.log").read_text().splitlines()
    assert calls[0] == "auth status --hostname github.com"
    assert calls[1] == (
        "api -H Accept: application/vnd.github+json "
        f"repos/{SLUG}/actions/runs?head_sha={_tagged(repo)}"
    )
    assert calls[-1].endswith(f"repos/{SLUG}/actions/runs/1001/jobs")


def test_without_a_token_or_gh_publish_says_where_to_follow(
    github,
    repo,  # noqa: F811
    capsys,
    monkeypatch,
):
    assert main(["publish", str(repo / "release.yaml")]) == 0
    out = capsys.readouterr().out
    assert f"follow the release at https://github.com/{SLUG}/actions" in out
    assert github.requests == []

    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    assert main(["publish", str(repo / "release.yaml"), "--no-follow"]) == 0
    assert github.requests == [], "--no-follow asks GitHub nothing"


def test_a_refused_token_is_one_line_that_never_shows_it(
    github,
    repo,  # noqa: F811
    capsys,
    monkeypatch,
):
    wrong = random_token("ghp_")
    monkeypatch.setenv("GITHUB_TOKEN", wrong)

    assert main(["publish", str(repo / "release.yaml"), "--interval", "0"]) == 1

    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"error: GitHub: GET {github.url}/repos/{SLUG}/actions/runs: HTTP 401 Bad "
        "credentials (set GITHUB_TOKEN to a token that can read the repository's Actions, "
        "or run `gh auth login`; --no-follow skips following)"
    ]
    scan = Scan(wrong)
    scan.many("output", [out, err])
    assert scan.leaks == []


def test_a_run_that_never_starts_is_one_line(github):
    client = RunsClient(GitHubRepo("acme", "tiny-release"), token_road(TOKEN, github.url), via="t")
    with pytest.raises(WorkError) as refused:
        follow_run(client, "0" * 40, "v1.0.0", print, interval=0, appear_within=0)
    assert refused.value.message == (
        f"GitHub started no workflow run for v1.0.0 (commit {'0' * 12}) within 0 s"
    )
    assert f"https://github.com/{SLUG}/actions" in (refused.value.hint or "")


@pytest.mark.anyio
async def test_the_wizard_follows_the_run_it_published(
    github,
    repo,  # noqa: F811
    monkeypatch,
):
    from release.publish import follow

    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setattr(follow, "INTERVAL", 0)
    _script(github, repo, SUCCESS)

    shown = await publish_in_the_wizard(repo / "release.yaml")  # what the toasts say
    assert shown[-1] == f"released v1.0.0: https://github.com/{SLUG}/actions/runs/1001"
    assert "  job release: completed (success)" in shown


def test_github_tokens_are_redacted_by_value_and_by_shape(monkeypatch):
    from release.core.redact import redact

    unshaped = random_token(length=32)
    monkeypatch.setenv("GH_TOKEN", unshaped)
    pat = random_token("github_pat_", 60)
    text = f"Bearer {TOKEN}, {pat}, {unshaped}"
    assert redact(text) == "Bearer ghp_***, github_pat_***, ***"
