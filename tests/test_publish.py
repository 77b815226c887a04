"""`model-release publish`: a release walked here becomes a tag push that the
repository's workflow releases. The remote is a local bare repository; what it holds
(the commit, the tag, the workflow) is read back with git itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from release.cli import main
from tests.test_github_actionlint import actionlint

RELEASE_YAML = """\
name: tiny-chat
version: 1.0.0
base:
  repo_id: acme/tiny-base
adapter:
  repo_id: trainer/tiny-lora
eval:
  results: [results/scores.yaml]
push:
  repo_id: tester/tiny-chat
"""


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A release repository (release.yaml, results, an unrelated file) and its remote."""
    for key, value in {
        "GIT_AUTHOR_NAME": "Tester",
        "GIT_AUTHOR_EMAIL": "tester@example.com",
        "GIT_COMMITTER_NAME": "Tester",
        "GIT_COMMITTER_EMAIL": "tester@example.com",
        "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
    }.items():
        monkeypatch.setenv(key, value)
    git(tmp_path, "init", "--bare", "-b", "main", "remote.git")
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-b", "main")
    git(root, "remote", "add", "origin", str(tmp_path / "remote.git"))
    (root / "release.yaml").write_text(RELEASE_YAML)
    (root / "results").mkdir()
    (root / "results" / "scores.yaml").write_text("harness: h\nresults: []\n")
    (root / "notes.txt").write_text("not part of the release")
    return root


def remote(repo: Path, *args: str) -> str:
    return git(repo.parent, "--git-dir", "remote.git", *args)


def test_publish_commits_tags_and_pushes_with_a_workflow(repo, capsys):
    spec = repo / "release.yaml"
    assert main(["publish", str(spec), "--action", "acme/model-release@v1"]) == 0
    out = capsys.readouterr().out
    assert "wrote .github/workflows/release.yml" in out and "pushed v1.0.0" in out

    head = remote(repo, "rev-parse", "refs/heads/main")
    assert remote(repo, "rev-parse", "v1.0.0^{commit}") == head == git(repo, "rev-parse", "HEAD")
    tree = remote(repo, "ls-tree", "-r", "--name-only", "v1.0.0").splitlines()
    assert sorted(tree) == [".github/workflows/release.yml", "release.yaml", "results/scores.yaml"]
    assert remote(repo, "show", "v1.0.0:release.yaml") + "\n" == RELEASE_YAML
    workflow = remote(repo, "show", "v1.0.0:.github/workflows/release.yml")
    steps = yaml.safe_load(workflow)["jobs"]["release"]["steps"]
    assert steps[-1]["uses"] == "acme/model-release@v1"
    assert steps[-1]["with"]["config"] == "release.yaml"
    assert (repo / "notes.txt").is_file() and "notes.txt" not in tree
    result = actionlint(repo / ".github" / "workflows" / "release.yml")
    assert result.returncode == 0, result.stdout + result.stderr

    # Again: nothing new to commit, the tag is where it was; nothing moves.
    assert main(["publish", str(spec)]) == 0
    assert remote(repo, "rev-parse", "refs/heads/main") == head
    assert "wrote" not in capsys.readouterr().out  # the workflow is there already

    # A change without a new version would move a published tag: refused.
    spec.write_text(RELEASE_YAML.replace("tester/tiny-chat", "tester/other"))
    assert main(["publish", str(spec)]) == 2
    assert "tag v1.0.0 already exists on commit" in capsys.readouterr().err
    assert remote(repo, "rev-parse", "v1.0.0^{commit}") == head


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda text: text.replace("  repo_id: trainer/tiny-lora", "  path: adapter"),
            "a GitHub runner cannot read it (push the adapter to the Hub and set "
            "adapter.repo_id instead of adapter.path)",
        ),
        (
            lambda text: text.replace("[results/scores.yaml]", "[../elsewhere.yaml]"),
            "is outside the git repository",
        ),
    ],
    ids=["local adapter", "results outside"],
)
def test_publish_refuses_what_a_runner_could_not_read(repo, capsys, change, expected):
    spec = repo / "release.yaml"
    spec.write_text(change(RELEASE_YAML))
    (repo / "adapter").mkdir()
    assert main(["publish", str(spec)]) == 2
    assert expected in capsys.readouterr().err
    assert remote(repo, "tag", "--list") == ""


def test_publish_outside_a_git_repository_says_what_to_do(tmp_path, capsys):
    (tmp_path / "release.yaml").write_text(RELEASE_YAML)
    assert main(["publish", str(tmp_path / "release.yaml")]) == 2
    err = capsys.readouterr().err
    assert "a git repository" in err and "model-release push" in err


async def publish_in_the_wizard(spec: Path) -> list[str]:
    """ctrl+g, yes, and every worker done, in the wizard opened on ``spec``; what its
    notifications said."""
    from release.tui.app import make_wizard
    from tests.support.tui_pilot import SIZE

    app = make_wizard(spec)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+g")
        await pilot.pause()
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        return [n.message for n in app._notifications]


@pytest.mark.anyio
async def test_the_wizard_publishes_through_github_actions(repo):
    await publish_in_the_wizard(repo / "release.yaml")
    assert remote(repo, "rev-parse", "v1.0.0^{commit}") == git(repo, "rev-parse", "HEAD")
    tree = remote(repo, "ls-tree", "-r", "--name-only", "v1.0.0").splitlines()
    assert ".github/workflows/release.yml" in tree and "release.yaml" in tree
