"""Refresh the model card of a published release, and nothing else.

The usual case is an eval refresh: new results (lm-eval JSON, simple YAML/CSV) are
committed next to release.yaml and listed in ``eval.results``, and the Hub card should
show them. No model is downloaded or uploaded:

1. The release's measured facts come from its manifest: the workspace's, when this
   machine built the release; otherwise the one the release published
   (``release/manifest.json`` at the tag ``v<version>`` of ``push.repo_id``, a few kB),
   saved as the workspace's manifest.
2. The card stage runs alone (forced) on that manifest: README.md from the spec's card
   section, the manifest's facts and the stored eval results, linted as it is rendered.
3. One commit to ``push.repo_id`` holding README.md and the ``.eval_results/*.yaml``
   entries of the stored results, as the card stage wrote them (the files a full push
   sends, ``model_card_files``), made by the push's own code (``release.hub.commit``)
   with no file treated as stale, so nothing else in the repo changes; files the Hub
   already holds are not sent again. The release tag is not moved: it keeps the card
   the release was published with.

The evaluation gate is not run again: it judged the release when it was built.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from release import __version__
from release.core.errors import InputError, named_stage
from release.core.events import Event, Log, StageFinished, StageStarted
from release.core.files import atomic_write_bytes
from release.core.manifest import MANIFEST_NAME, Manifest
from release.hub.facts import PushFacts
from release.hub.plan import RELEASE_MANIFEST, PushPlan, RepoPlan, model_card_files
from release.spec.schema import ReleaseSpec
from release.stages.base import StageContext
from release.stages.card import CardStage
from release.stages.push import PushStage

if TYPE_CHECKING:
    from huggingface_hub import HfApi

    from release.hub.commit import RepoResult


@dataclass(frozen=True)
class CardPush:
    plan: RepoPlan
    result: RepoResult | None
    """None for a dry run."""


def publish_card(spec: ReleaseSpec, *, dry_run: bool = False) -> Generator[Event, None, CardPush]:
    """Steps 1-3 above; yields the runner's and the push's events.

    A dry run renders and checks the card and returns the plan, without committing;
    it needs a token only to read a private repo's manifest.
    """
    with named_stage(PushStage.name):
        return (yield from _publish_card(spec, dry_run))


def _publish_card(spec: ReleaseSpec, dry_run: bool) -> Generator[Event, None, CardPush]:
    from release.hub.api import hub_api
    from release.hub.checks import lint_cards, prepare_additions
    from release.hub.commit import hub_errors, push_repo
    from release.runner import run_release

    repo_id = spec.push.repo_id
    if repo_id is None:
        raise InputError("no push.repo_id in the spec", hint="add push: {repo_id: owner/name}")
    api = hub_api(token_required=not dry_run)
    if not dry_run:
        with hub_errors(repo_id, "read the repo"):
            exists = api.repo_exists(repo_id)
        if not exists:
            raise InputError(
                f"{repo_id}: no such repo on the Hub; a card-only push updates a published release",
                hint="publish the release first: `model-release run`",
            )
    yield from _ensure_manifest(api, spec)
    card_only = [CardStage.name]
    manifest = yield from run_release(spec, only=card_only, force=card_only)
    with tempfile.TemporaryDirectory(prefix="model-release-card-") as scratch:
        plan = card_plan(spec, manifest)
        yield StageStarted(PushStage.name, "Push the model card")
        started = time.perf_counter()
        ctx = StageContext(spec, manifest, spec.workspace, Path(scratch), PushStage.name)
        for warning in lint_cards(PushPlan(repos=(plan,), generated=())):
            yield ctx.log(warning, "warning")
        additions = prepare_additions(plan)
        if dry_run:
            return CardPush(plan, None)
        result = yield from push_repo(api, ctx, plan, additions, stale=())
    seconds = round(time.perf_counter() - started, 3)
    yield StageFinished(PushStage.name, seconds, PushFacts(repos=[result]).as_json())
    return CardPush(plan, result)


def card_plan(spec: ReleaseSpec, manifest: Manifest) -> RepoPlan:
    """README.md and the .eval_results/*.yaml entries, as the card stage wrote them."""
    assert spec.push.repo_id is not None
    files = model_card_files(manifest, spec.workspace, CardStage.name)
    sources = ", ".join(path.name for path in spec.eval.results) or "no stored results"
    return RepoPlan(
        role="model",
        repo_id=spec.push.repo_id,
        private=spec.push.private,
        create_pr=spec.push.create_pr,
        tag=None,
        commit_message=f"Update the model card of {spec.name} {spec.tag}",
        commit_description=(
            f"Regenerated by model-release {__version__} from the release's manifest and "
            f"stored eval results ({sources}); no model file changed."
        ),
        files=tuple(sorted(files, key=lambda f: f.path_in_repo)),
    )


def _ensure_manifest(api: HfApi, spec: ReleaseSpec) -> Generator[Event, None, None]:
    """Put the published release's manifest in the workspace unless it holds this one."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from release.hub.commit import hub_errors

    path = spec.workspace / MANIFEST_NAME
    local = Manifest.load(path) if path.is_file() else None
    if local and (local.name, local.version) == (spec.name, spec.version):
        return
    assert spec.push.repo_id is not None
    revision = spec.tag if spec.push.tag else None
    where = f"{spec.push.repo_id}@{revision or 'main'}"
    with tempfile.TemporaryDirectory(prefix="model-release-manifest-") as scratch:
        with hub_errors(spec.push.repo_id, f"download {RELEASE_MANIFEST}"):
            try:
                downloaded = api.hf_hub_download(
                    spec.push.repo_id, RELEASE_MANIFEST, revision=revision, local_dir=scratch
                )
            except (EntryNotFoundError, RevisionNotFoundError, RepositoryNotFoundError):
                downloaded = None
        if downloaded is None:
            raise InputError(
                f"{where}: no {RELEASE_MANIFEST}, so no published release to take the "
                "card's facts from",
                hint="check `version` in release.yaml, or push the card from the workspace "
                "that built the release",
            )
        published = Manifest.load(Path(downloaded))
        if (published.name, published.version) != (spec.name, spec.version):
            raise InputError(
                f"{where}: {RELEASE_MANIFEST} is the release of {published.name} "
                f"{published.version}, not {spec.name} {spec.version}",
                hint="check `name` and `version` in release.yaml",
            )
        atomic_write_bytes(path, Path(downloaded).read_bytes())
    yield Log(PushStage.name, f"took the release's facts from {where}: {RELEASE_MANIFEST}")
