"""A release's history as people read it: each version of the chain of manifests
(``release.evaluate.history``) as its manifest recorded it, read through the stages'
typed facts: date, base and revision, adapter rank and targets, stored scores, the sizes
of the released files, each GGUF file's loss on the held-out text, tools, the gate's
verdict. A version the gate held back is listed
as not released, with the gate's reason.

Pure data: no models, no torch. The card, the release notes and ``compare`` read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cards.measured import HistoryCell, HistoryFacts, HistoryVersion
from cards.records import EvalRecord, score_label
from release.core.manifest import Manifest
from release.evaluate.facts import EvaluateFacts, GateFacts, evaluated
from release.evaluate.gate import compare
from release.evaluate.history import chain, refusal_reason
from release.evaluate.scores import release_scores
from release.gguf.facts import GGUFFacts, QuantQualityFacts
from release.hub.facts import PushFacts
from release.merge.facts import AdapterFacts, MergeFacts
from release.report.card_facts import CardFacts

RELEASED_STAGES = (MergeFacts.stage, GGUFFacts.stage, AdapterFacts.stage)
"""The stages whose outputs a release publishes (the files whose sizes the history keeps)."""


@dataclass(frozen=True)
class ReleaseEntry:
    """One version of the release, as its manifest recorded it."""

    name: str
    version: str
    date: str | None
    base: str | None
    base_revision: str | None
    rank: int | None
    targets: list[str]
    scores: list[EvalRecord]
    files: dict[str, int]
    """Released files (path in the workspace -> bytes)."""
    tools: dict[str, str]
    gate: GateFacts | None
    refused: str | None
    """The gate's reason when it said no; None for a released version."""
    quants: dict[str, QuantQualityFacts] = field(default_factory=dict)
    """Each GGUF type's loss against the merged model, where llama.cpp measured it."""

    @property
    def released(self) -> bool:
        return self.refused is None

    @property
    def status(self) -> str:
        return "released" if self.released else f"not released: {self.refused}"


@dataclass
class History:
    """Newest first; ``missing`` names previous manifests the chain could not read."""

    entries: list[ReleaseEntry]
    missing: list[str] = field(default_factory=list)

    def last_released(self) -> ReleaseEntry | None:
        """The release this one is measured against: the newest released one before it."""
        return next((entry for entry in self.entries[1:] if entry.released), None)


def entry(manifest: Manifest) -> ReleaseEntry:
    adapter = AdapterFacts.of(manifest) or AdapterFacts()
    evaluate = evaluated(manifest) or EvaluateFacts()
    targets = adapter.target_modules
    return ReleaseEntry(
        name=manifest.name,
        version=manifest.version,
        date=_date(manifest),
        base=adapter.base_repo_id or adapter.base_id or adapter.declared_base,
        base_revision=adapter.base_revision,
        rank=adapter.r,
        targets=sorted([targets] if isinstance(targets, str) else targets or []),
        scores=release_scores(manifest).records,
        files={
            file.path: file.bytes
            for stage in RELEASED_STAGES
            if (record := manifest.stages.get(stage))
            for file in record.outputs
        },
        tools=model_tools(manifest),
        gate=evaluate.gate,
        refused=refusal_reason(manifest),
        quants={
            file.type: file.quality
            for file in (GGUFFacts.of(manifest) or GGUFFacts()).files
            if file.quality is not None
        },
    )


def _date(manifest: Manifest) -> str | None:
    """When the version was settled: its push, else its gate's verdict, else its last stage."""
    push = manifest.stages.get(PushFacts.stage)
    if push:
        return push.finished_at
    if refusal := manifest.refused.get(EvaluateFacts.stage):
        return refusal.finished_at
    evaluate = manifest.stages.get(EvaluateFacts.stage)
    if evaluate:
        return evaluate.finished_at
    return max((record.finished_at for record in manifest.stages.values()), default=None)


def model_tools(manifest: Manifest) -> dict[str, str]:
    """Tools of the stages that made the model (the card and push have their own)."""
    tools: dict[str, str] = {}
    for name, record in manifest.stages.items():
        if name not in (CardFacts.stage, PushFacts.stage):
            tools |= record.tools
    return tools


def history(manifest: Manifest, folder: Path) -> History:
    """``manifest`` (lying in ``folder``) and its previous releases, newest first."""
    found = chain(manifest, folder)
    return History([entry(item) for item in found.manifests], found.missing)


def history_of(path: Path) -> History:
    return history(Manifest.load(path), path.parent)


def history_facts(found: History) -> HistoryFacts | None:
    """The card's "Release history" entry, oldest version first: each version's scores
    (those of this release's tasks) and their change against the release before it, the
    one its gate compared with. A score measured differently (another n-shot or task
    version) carries why instead of a change; ``missing`` names where the chain broke off.
    None when there is no earlier version to show or to miss."""
    if len(found.entries) < 2 and not found.missing:
        return None
    keys = [record.key for record in found.entries[0].scores]
    versions, last = [], None
    for item in reversed(found.entries):
        own = {record.key: record for record in item.scores}
        before = {record.key: record for record in last.scores} if last else {}
        versions.append(
            HistoryVersion(
                version=item.version,
                date=(item.date or "")[:10] or None,
                reason=item.refused,
                scores=[_cell(own.get(key), before.get(key)) for key in keys],
            )
        )
        last = item if item.released else last
    columns = [score_label(*key) for key in keys]
    return HistoryFacts(columns=columns, versions=versions, missing=found.missing)


def _cell(record: EvalRecord | None, before: EvalRecord | None) -> HistoryCell:
    if record is None:
        return HistoryCell()
    if before is None:
        return HistoryCell(value=record.value)
    verdict = compare([record], [before], max_task_drop=1, max_average_drop=1)
    if verdict.flagged:
        return HistoryCell(value=record.value, differs=verdict.flagged[0])
    return HistoryCell(value=record.value, change=0.0 - verdict.compared[0].drop)  # never -0.0
