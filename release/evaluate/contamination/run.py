"""The stage's one call: the test documents, the training data, the check, the facts and
the gate's verdict (a refusal raises ``Refused`` with the facts)."""

from __future__ import annotations

import tempfile
from collections.abc import Generator
from pathlib import Path

from release.core.errors import Refused
from release.core.events import Event, Reporter
from release.core.paths import relative_if_inside
from release.evaluate.contamination.check import check_contamination
from release.evaluate.contamination.facts import ContaminationFacts
from release.evaluate.contamination.methods import methods_of
from release.evaluate.contamination.settings import ContaminationSettings
from release.evaluate.contamination.tasks import test_documents
from release.evaluate.contamination.training import read_segments
from release.evaluate.contamination.verdict import gate, task_facts
from release.spec.schema import TrainingDataSpec


def training_label(source: TrainingDataSpec, spec_dir: Path | None) -> str:
    """How the facts and the card name a source: a path relative to the spec's folder,
    or the Hub dataset (with its config and split)."""
    if source.path is not None:
        return str(relative_if_inside(source.path, spec_dir))
    parts = [source.hub or "", source.config or "", source.split]
    return ":".join(part for part in parts if part)


def run_check(
    spec: ContaminationSettings, spec_dir: Path | None, workspace: Path, report: Reporter
) -> Generator[Event, None, ContaminationFacts]:
    contamination = spec.contamination
    assert contamination is not None
    methods = methods_of(contamination)
    yield report.log("contamination: building the reported tasks' documents (offline)")
    documents, skipped = test_documents(spec)
    for task in skipped:
        yield report.log(f"contamination: {task.task} not checked: {task.reason}", "warning")
    with tempfile.TemporaryDirectory(prefix=".contamination-", dir=workspace) as spill:
        result = yield from check_contamination(
            contamination,
            methods,
            documents,
            read_segments(contamination.training_data),
            Path(spill),
            report,
        )
    tasks, failures = gate(task_facts(result, methods), contamination)
    facts = ContaminationFacts(
        training=[training_label(s, spec_dir) for s in contamination.training_data],
        segments=result.segments,
        characters=result.characters,
        methods=methods,
        tasks=tasks,
        skipped=skipped,
        max_share=contamination.max_share,
        on_exceed=contamination.on_exceed,
        passed=not failures,
        failures=failures,
        index_hashes=result.index_hashes,
        index_spilled=result.index_spilled,
    )
    found = sum(task.any_method for task in tasks)
    yield report.log(
        f"contamination: {found} of {len(documents)} test documents of {len(tasks)} tasks "
        f"found in {result.segments} training texts"
    )
    if failures:
        raise Refused(
            failures[0] + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""),
            facts=facts.as_json(),
            hint="leave the task's documents out of the training data, or set "
            "eval.contamination.on_exceed: mark to publish with the task marked",
        )
    return facts
