"""The chain of a release's manifests: its own, and those its gate compared against
(``EvaluateFacts.previous``), then each of those manifests' own previous.

A version whose gate said no (``Manifest.refused``) is in the chain too; the gate of a
later release compares against the newest version of the chain that was released
(``released_scores``). ``release.report.history`` turns the chain into the table the
card and the release notes show.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cards.records import EvalRecord
from release.core.files import sha256_file
from release.core.manifest import MANIFEST_NAME, Manifest
from release.evaluate.facts import EvaluateFacts, PreviousRelease, evaluated
from release.evaluate.scores import release_scores


@dataclass
class Chain:
    """Manifests, newest first; ``missing`` names previous manifests that are gone."""

    manifests: list[Manifest]
    missing: list[str] = field(default_factory=list)


def refusal_reason(manifest: Manifest) -> str | None:
    """The gate's reason when it held this version back; None when it was released."""
    refusal = manifest.refused.get(EvaluateFacts.stage)
    return refusal.message if refusal else None


def chain(manifest: Manifest, folder: Path) -> Chain:
    """``manifest`` (lying in ``folder``) and the chain of its previous releases."""
    found = Chain([manifest])
    seen: set[Path] = set()
    queue = [(folder, item) for item in _previous(manifest)]
    while queue:
        where, previous = queue.pop(0)
        path = (where / previous.path).resolve()
        if path in seen:
            continue
        seen.add(path)
        if not path.is_file():
            # the recorded relative path: this line may go on a published card
            found.missing.append(f"{previous.version or '?'}: {previous.path} is gone")
            continue
        older = Manifest.load(path)
        found.manifests.append(older)
        queue += [(path.parent, item) for item in _previous(older)]
    return found


def _previous(manifest: Manifest) -> list[PreviousRelease]:
    facts = evaluated(manifest)
    return facts.previous if facts else []


def chain_of(path: Path) -> Chain:
    return chain(Manifest.load(path), path.parent)


def previous_release(path: Path, folder: Path) -> PreviousRelease:
    """The record of a previous manifest at ``path``, relative to ``folder`` (where the
    manifest that records it will lie)."""
    manifest = Manifest.load(path)
    return PreviousRelease(
        path=os.path.relpath(path.absolute(), folder.absolute()),
        sha256=sha256_file(path),
        name=manifest.name,
        version=manifest.version,
    )


def is_manifest(path: Path) -> bool:
    return path.name == MANIFEST_NAME


def released_scores(path: Path) -> list[EvalRecord]:
    """The scores to compare against in the manifest at ``path``: its own when it was
    released, else those of the newest released version of its chain."""
    newest = next((m for m in chain_of(path).manifests if refusal_reason(m) is None), None)
    return release_scores(newest).records if newest else []
