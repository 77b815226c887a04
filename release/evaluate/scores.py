"""Which scores belong to a release: one rule, for the gate, the card and every reader.

A release's scores are its stored results (``eval.results``, files kept beside
release.yaml) and those its lm-eval run produced (``eval.tasks``), merged as
``cards.evals`` merges results files: for one (task, metric, filter) the newest wins, a
produced score over a stored one of the same date. Each keeps its ``source``, the file
it was read from, relative to the spec's folder. The base model's scores
(``eval.tasks.compare_base``) stand beside them, never among them.

The gate judges ``this_release(stored, produced)`` and the evaluate stage records it;
``release_scores`` reads a release back from its manifest, for the card (which reads the
stored results again, so a card-only refresh shows new ones), the history, the notes,
the job summary and the wizard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from cards.evals import load_results, merge_records
from cards.records import EvalRecord
from release.core.manifest import Manifest
from release.core.paths import relative_if_inside
from release.evaluate.facts import EvaluateFacts, evaluated


@dataclass(frozen=True)
class ReleaseScores:
    records: list[EvalRecord] = field(default_factory=list)
    """This release's scores: the model-index, ``.eval_results``, the gate's."""
    baseline: list[EvalRecord] = field(default_factory=list)
    """The base model's on the same tasks, shown beside ``records``."""


def read_scores(
    files: Iterable[Path], spec_dir: Path | None, moved: Mapping[Path, Path] | None = None
) -> list[EvalRecord]:
    """The records of results ``files``, each source the path its file has once the stage
    is done (``moved``: the harness's files, from the staging folder to the stage's),
    relative to ``spec_dir`` (the facts must not hold where the release was built)."""
    final = {str(staged): done for staged, done in (moved or {}).items()}
    return [
        record.model_copy(
            update={"source": relative_if_inside(final.get(record.source, record.source), spec_dir)}
        )
        for record in load_results(files)
    ]


def this_release(stored: Iterable[EvalRecord], produced: Iterable[EvalRecord]) -> list[EvalRecord]:
    """The rule: stored and produced scores merged, produced last."""
    return merge_records([stored, produced])


def release_scores(
    manifest: Manifest, stored: Iterable[Path] | None = None, spec_dir: Path | None = None
) -> ReleaseScores:
    """The scores of the release ``manifest`` records. With ``stored`` (the spec's
    ``eval.results``), the stored scores are read from those files now, beside the scores
    the release produced; without, they are the ones its gate judged."""
    facts = evaluated(manifest) or EvaluateFacts()
    if stored is None:
        return ReleaseScores(facts.results, facts.base_results)
    return ReleaseScores(
        this_release(read_scores(stored, spec_dir), _produced(facts)), facts.base_results
    )


def _produced(facts: EvaluateFacts) -> list[EvalRecord]:
    """The scores the lm-eval run produced. A manifest written before the harness
    recorded them has them among ``results`` only, read from its files."""
    harness = facts.harness
    if harness is None:
        return []
    if harness.results or "results" in harness.model_fields_set:
        return harness.results
    names = {PurePath(file).name for file in harness.files}
    return [record for record in facts.results if PurePath(record.source).name in names]
