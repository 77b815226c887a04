"""Publish a release through GitHub Actions: the repository, not this machine, releases.

``model-release publish`` (and the wizard's last step) turns a release walked in the
terminal into a tag push, in the git repository that holds release.yaml:

1. checks that a runner could release it: the adapter and the base come from the Hub
   (a local ``adapter.path`` or ``base.path`` is not in the repository), and the stored
   eval results and card template are inside it;
2. writes ``.github/workflows/release.yml`` (``templates/release-workflow.yml``, which runs
   model-release's action on a ``v*`` tag) when no workflow of the repository uses it;
3. commits release.yaml, the stored results, the template and that workflow (only
   those paths; whatever else is staged or changed stays as it is);
4. tags the commit ``v<version>`` and pushes the branch and the tag to the remote.

The release's own token is not needed here: the workflow reads the repository's secret
HF_TOKEN. Following the run is ``release.publish.follow``'s.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import templates
from release.core.errors import InputError, WorkError
from release.publish.github_api import GitHubRepo
from release.spec.schema import ReleaseSpec

ACTION_REF = "model-release/model-release@v0"
"""The action the written workflow uses (``--action`` names another, e.g. a fork)."""
WORKFLOW = Path(".github/workflows/release.yml")


@dataclass(frozen=True)
class Published:
    tag: str
    commit: str
    remote: str
    workflow_written: bool
    github: GitHubRepo | None
    """The remote's repository on GitHub; None for a remote elsewhere."""

    @property
    def summary(self) -> str:
        return f"pushed {self.tag} ({self.commit[:12]}) to {self.remote}"

    @property
    def follow_hint(self) -> str:
        """Where to follow the run without this machine following it."""
        if self.github is None:
            return "the remote is not on GitHub: the release runs wherever its CI runs tags"
        return (
            f"follow the release at {self.github.actions_url} (with the GitHub CLI logged "
            "in, or GITHUB_TOKEN set, `model-release publish` follows it here)"
        )


def publish(spec: ReleaseSpec, remote: str = "origin", action: str = ACTION_REF) -> Published:
    """Commit, tag and push ``spec``'s release so its repository's workflow releases it."""
    assert spec.file is not None, "publish needs a spec loaded from release.yaml"
    root = _repo_root(spec.file.parent)
    paths = _release_paths(spec, root)
    url = _git(root, "remote", "get-url", remote, what=f"the remote {remote!r}")
    written = not _has_release_workflow(root)
    if written:
        config = spec.file.relative_to(root).as_posix()
        text = templates.read("release-workflow.yml")
        (root / WORKFLOW).parent.mkdir(parents=True, exist_ok=True)
        (root / WORKFLOW).write_text(
            text.replace("__ACTION__", action).replace("__CONFIG__", config), encoding="utf-8"
        )
        paths.append(root / WORKFLOW)
    relative = [path.relative_to(root).as_posix() for path in paths]
    _git(root, "add", "--", *relative)
    staged = _git(root, "diff", "--cached", "--name-only", "--", *relative)
    if staged:
        _git(root, "commit", "-m", f"Release {spec.name} {spec.tag}", "--", *relative)
    commit = _git(root, "rev-parse", "HEAD")
    _tag(root, spec.tag, commit)
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    _git(root, "push", remote, f"HEAD:refs/heads/{branch}", what=f"push to {remote}")
    _git(root, "push", remote, f"refs/tags/{spec.tag}", what=f"push the tag to {remote}")
    return Published(spec.tag, commit, remote, written, GitHubRepo.from_remote(url))


def _release_paths(spec: ReleaseSpec, root: Path) -> list[Path]:
    """What the runner needs from the repository; refuses what it could not have."""
    if spec.adapter is not None and spec.adapter.path is not None:
        raise InputError(
            f"adapter.path: {spec.adapter.path} is a folder on this machine; a GitHub runner "
            "cannot read it",
            hint="push the adapter to the Hub and set adapter.repo_id instead of adapter.path",
        )
    if spec.base.path is not None:
        raise InputError(
            f"base.path: {spec.base.path} is a folder on this machine; a GitHub runner "
            "cannot read it",
            hint="remove base.path: the runner downloads base.repo_id",
        )
    assert spec.file is not None
    paths = [spec.file, *spec.eval.results, *spec.card.template_files()]
    for path in paths:
        if not path.is_relative_to(root):
            raise InputError(
                f"{path} is outside the git repository {root}",
                hint="move it into the repository, next to release.yaml",
            )
    return paths


def _has_release_workflow(root: Path) -> bool:
    folder = root / WORKFLOW.parent
    workflows = [*folder.glob("*.yml"), *folder.glob("*.yaml")] if folder.is_dir() else []
    return any("model-release" in path.read_text(encoding="utf-8") for path in workflows)


def _tag(root: Path, tag: str, commit: str) -> None:
    """Tag ``commit``; a tag that already names another commit is never moved."""
    existing = _git(root, "tag", "--list", tag)
    if existing:
        tagged = _git(root, "rev-list", "-n", "1", tag)
        if tagged != commit:
            raise InputError(
                f"tag {tag} already exists on commit {tagged[:12]}, not on {commit[:12]}",
                hint="a published tag is never moved: bump version in release.yaml",
            )
        return
    _git(root, "tag", "-a", tag, "-m", f"Release {tag}")


def _repo_root(folder: Path) -> Path:
    return Path(
        _git(
            folder,
            "rev-parse",
            "--show-toplevel",
            what="a git repository",
            hint="run `git init` and add a remote, or push from here with `model-release push`",
        )
    )


def _git(cwd: Path, *args: str, what: str | None = None, hint: str | None = None) -> str:
    """Run git; its first error line becomes a one-line error naming ``what`` failed."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["(no output)"])[0]
        message = f"git {args[0]}: {what or ' '.join(args)}: {first}"
        if what and args[0] in ("rev-parse", "remote"):
            raise InputError(message, hint=hint or "check the repository and its remotes")
        raise WorkError(message, hint=hint or "fix the repository's state and run again")
    return done.stdout.strip()
