"""What a push uploads: repos, files (size, sha256), commit messages and the tag.

The plan is built from the push's settings and the manifest alone, with no network and no token,
so ``push --dry-run`` shows exactly what a real push would send (``release.hub.remote``
adds what the Hub already holds of it). Sizes and hashes come from the manifest (what
the stages measured when they wrote the files); the push checks the files on disk
against them before uploading (``release.hub.checks``).

Three repos at most:

- the model repo (``push.repo_id``): the merged model (safetensors shards, index,
  config, generation config, tokenizer files, chat template), the model card as
  README.md, the ``.eval_results/*.yaml`` entries of the stored eval results and the
  release manifest;
- the GGUF repo (``push.gguf_repo_id``): the GGUF files and their own card;
- the adapter repo (``push.adapter_repo_id``): the LoRA adapter and its card.

Each repo gets one commit holding all its files, then the tag ``v<version>``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from cards.evals import EVAL_RESULTS_DIR
from release import __version__
from release.core.errors import InputError
from release.core.manifest import FileRecord, Manifest
from release.core.units import human
from release.hub.settings import PushSettings

RELEASE_MANIFEST = "release/manifest.json"
"""Where the release manifest lands in every pushed repo."""

CARD = "README.md"
STAGED_EVAL_RESULTS = EVAL_RESULTS_DIR.removeprefix(".")
"""Where the card stage keeps the .eval_results entries: the same name, visible (a
stage's hidden files are not its outputs)."""

Role = Literal["model", "gguf", "adapter"]

ADAPTER_CARD = "adapter/README.md"
GGUF_CARD = "gguf/README.md"
"""The adapter and GGUF repos' cards, among the card stage's outputs."""

CARD_SOURCES: dict[Role, str] = {
    "model": "<workspace>/card/README.md",
    "gguf": f"<workspace>/card/{GGUF_CARD}",
    "adapter": f"<workspace>/card/{ADAPTER_CARD}",
}


@dataclass(frozen=True)
class PlannedFile:
    path_in_repo: str
    local: Path
    size: int
    sha256: str
    release_sha256: str | None = None
    """The release manifest's ``Manifest.release_sha256``: a copy on the Hub that says
    the same release, with another run's timings, is this file (a rerun of a published
    release on a fresh runner). None for every other file: its bytes are what counts."""


@dataclass(frozen=True)
class RepoPlan:
    role: Role
    repo_id: str
    private: bool
    create_pr: bool
    tag: str | None
    commit_message: str
    commit_description: str
    files: tuple[PlannedFile, ...]

    @property
    def card(self) -> PlannedFile | None:
        return next((f for f in self.files if f.path_in_repo == CARD), None)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class PushPlan:
    repos: tuple[RepoPlan, ...]
    generated: tuple[tuple[Path, bytes], ...]
    """Files the push writes itself (the release manifest), as (local path, content)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "repos": [
                {
                    "role": repo.role,
                    "repo_id": repo.repo_id,
                    "private": repo.private,
                    "create_pr": repo.create_pr,
                    "tag": repo.tag,
                    "commit_message": repo.commit_message,
                    "files": [
                        {"path": f.path_in_repo, "bytes": f.size, "sha256": f.sha256}
                        for f in repo.files
                    ],
                }
                for repo in self.repos
            ]
        }


def published_manifest(manifest: Manifest) -> Manifest:
    """The manifest as published: every stage before the push."""
    stages = {name: record for name, record in manifest.stages.items() if name != "push"}
    return manifest.model_copy(update={"stages": stages})


def release_manifest_bytes(manifest: Manifest) -> bytes:
    """The published manifest's bytes, without the local hash cache (absolute paths of
    this machine). Stable across reruns in one workspace, so pushing the same release
    twice uploads the same bytes; another runner's differ in the run-only fields
    (``release.core.manifest.RUN_ONLY_FIELDS``), which the push compares without."""
    published = published_manifest(manifest)
    return (published.model_dump_json(indent=2, exclude={"hash_cache"}) + "\n").encode()


@dataclass(frozen=True)
class Sources:
    """The stages whose outputs a push publishes, by the names the manifest files them
    under (the push stage names them; the plan knows no stage)."""

    merge: str
    gguf: str
    adapter: str
    card: str


def build_plan(
    settings: PushSettings,
    manifest: Manifest,
    workspace: Path,
    out_dir: Path,
    sources: Sources,
    *,
    notes: str = "",
) -> PushPlan:
    """The push of a release, from the outputs recorded in ``manifest``; ``settings``
    is all it reads of the spec.

    ``notes`` (the release notes, Markdown) open each commit's description.

    ``out_dir`` is where the push writes the files it generates (the release manifest).
    Raises ``InputError`` when the spec asks for a repo whose files the stages did not
    make.
    """
    push = settings.push
    if push.repo_id is None:
        raise InputError("no push.repo_id in the spec", hint="add push: {repo_id: owner/name}")
    content = release_manifest_bytes(manifest)
    manifest_file = PlannedFile(
        RELEASE_MANIFEST,
        out_dir / PurePosixPath(RELEASE_MANIFEST).name,
        len(content),
        hashlib.sha256(content).hexdigest(),
        release_sha256=published_manifest(manifest).release_sha256(),
    )
    tag = settings.tag if push.tag else None
    title = f"{settings.name} {settings.tag}"
    description = (notes.strip() + "\n\n" if notes.strip() else "") + (
        f"Released with model-release {__version__}. "
        f"Every file's sha256 is listed in {RELEASE_MANIFEST} "
        f"(sha256 {manifest_file.sha256})."
    )

    def repo(role: Role, repo_id: str, files: list[PlannedFile], message: str) -> RepoPlan:
        by_path = {f.path_in_repo: f for f in [*files, manifest_file]}
        return RepoPlan(
            role=role,
            repo_id=repo_id,
            private=push.private,
            create_pr=push.create_pr,
            tag=tag,
            commit_message=message,
            commit_description=description,
            files=tuple(sorted(by_path.values(), key=lambda f: f.path_in_repo)),
        )

    card = _stage_files(manifest, workspace, sources.card, "push.repo_id")
    model_files = [
        *_stage_files(manifest, workspace, sources.merge, "push.repo_id"),
        *model_card_files(manifest, workspace, sources.card),
    ]
    repos = [repo("model", push.repo_id, model_files, f"Release {title}")]
    if push.gguf_repo_id:
        gguf = _stage_files(manifest, workspace, sources.gguf, "push.gguf_repo_id")
        gguf += [_moved(f, CARD) for f in card if f.path_in_repo == GGUF_CARD]
        repos.append(repo("gguf", push.gguf_repo_id, gguf, f"Release {title} (GGUF)"))
    if push.adapter_repo_id:
        adapter = _stage_files(manifest, workspace, sources.adapter, "push.adapter_repo_id")
        adapter += [_moved(f, CARD) for f in card if f.path_in_repo == ADAPTER_CARD]
        message = f"Release {title} (adapter)"
        repos.append(repo("adapter", push.adapter_repo_id, adapter, message))
    repo_ids = [planned.repo_id for planned in repos]
    if len(set(repo_ids)) < len(repo_ids):
        raise InputError(
            f"push: the model, GGUF and adapter repos must differ (got {', '.join(repo_ids)})",
            hint="name the GGUF repo e.g. owner/name-GGUF",
        )
    for planned in repos:
        if planned.card is None:
            raise InputError(
                f"no model card for {planned.repo_id}: {CARD_SOURCES[planned.role]} is missing",
                hint="run `model-release run` so the card stages write it",
            )
    return PushPlan(repos=tuple(repos), generated=((manifest_file.local, content),))


def model_card_files(manifest: Manifest, workspace: Path, card_stage: str) -> list[PlannedFile]:
    """The model repo's card, from the card stage's outputs: README.md and the
    ``.eval_results/*.yaml`` entries."""
    card = _stage_files(manifest, workspace, card_stage, "push.repo_id")
    entries = [
        _moved(f, f"{EVAL_RESULTS_DIR}/{PurePosixPath(f.path_in_repo).name}")
        for f in card
        if PurePosixPath(f.path_in_repo).parent == PurePosixPath(STAGED_EVAL_RESULTS)
    ]
    return [f for f in card if f.path_in_repo == CARD] + entries


def _stage_files(manifest: Manifest, workspace: Path, stage: str, field: str) -> list[PlannedFile]:
    record = manifest.stages.get(stage)
    if record is None or not record.outputs:
        raise InputError(
            f"{field} is set but the {stage} stage has not produced any files",
            hint=f"run `model-release run` (with the {stage} stage) first",
        )
    return [_planned(output, workspace, stage) for output in record.outputs]


def _planned(output: FileRecord, workspace: Path, stage: str) -> PlannedFile:
    path = PurePosixPath(output.path)
    in_repo = path.relative_to(stage) if path.parts[:1] == (stage,) else path
    return PlannedFile(str(in_repo), workspace / output.path, output.bytes, output.sha256)


def _moved(planned: PlannedFile, path_in_repo: str) -> PlannedFile:
    return replace(planned, path_in_repo=path_in_repo)


def render_plan(
    plan: PushPlan, hub: Mapping[str, str] | None = None, marks: Mapping[Path, str] | None = None
) -> str:
    """The plan as text for a person: one block per repo, one line per file. ``hub``:
    a line per repo id saying what the Hub holds of it (``release.hub.remote``);
    ``marks``: a word for a file, by its local path, shown after it (``stale: card``)."""
    lines: list[str] = []
    for repo in plan.repos:
        visibility = "private" if repo.private else "public"
        target = "a pull request" if repo.create_pr else "main"
        tag = f", tag {repo.tag}" if repo.tag else ", no tag"
        lines.append(f"{repo.role} repo {repo.repo_id} ({visibility}): one commit to {target}{tag}")
        if hub and repo.repo_id in hub:
            lines.append(f"  on the Hub: {hub[repo.repo_id]}")
        lines.append(f"  commit message: {repo.commit_message}")
        width = max(len(f.path_in_repo) for f in repo.files)
        for f in repo.files:
            size = human(f.size, "bytes")
            mark = f"  [{marks[f.local]}]" if marks and f.local in marks else ""
            lines.append(f"  {f.path_in_repo:<{width}}  {size:>9}  sha256 {f.sha256}{mark}")
        lines.append(f"  {len(repo.files)} files, {human(repo.total_bytes, 'bytes')}")
    return "\n".join(lines)
