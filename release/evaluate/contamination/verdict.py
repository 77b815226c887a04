"""From the check's matches to the facts: each task's counts, shares and examples, and
the gate (``max_share``): above it, a task refuses the release or is marked on the card."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from release.evaluate.contamination.check import CheckResult
from release.evaluate.contamination.facts import (
    ExampleFacts,
    MethodFacts,
    TaskContaminationFacts,
)
from release.spec.schema import ContaminationSpec

MAX_EXAMPLES = 3
SPAN_CHARS = 200
"""A longer matching span is cut to its first this many characters, followed by "…"."""


def task_facts(result: CheckResult, methods: Sequence[MethodFacts]) -> list[TaskContaminationFacts]:
    """One record per task, in the order its documents came."""
    tasks = list(dict.fromkeys(doc.task for doc in result.documents))
    of_task = np.array([tasks.index(doc.task) for doc in result.documents], dtype=np.int64)
    flagged = {m.key: result.matches[m.key].flagged for m in methods}
    any_method = np.zeros(len(result.documents), dtype=bool)
    for column in flagged.values():
        any_method |= column
    records = []
    for number, task in enumerate(tasks):
        mine = of_task == number
        documents = int(mine.sum())
        contaminated = int((any_method & mine).sum())
        records.append(
            TaskContaminationFacts(
                task=task,
                documents=documents,
                contaminated={key: int((column & mine).sum()) for key, column in flagged.items()},
                any_method=contaminated,
                share=contaminated / documents if documents else 0.0,
                examples=_examples(result, methods, np.flatnonzero(any_method & mine)),
            )
        )
    return records


def _examples(
    result: CheckResult, methods: Sequence[MethodFacts], documents: np.ndarray
) -> list[ExampleFacts]:
    examples = []
    for document in documents[:MAX_EXAMPLES].tolist():
        method = next(m for m in methods if result.matches[m.key].flagged[document])
        matches = result.matches[method.key]
        span = matches.longest_span(document)
        overlap = matches.overlap
        examples.append(
            ExampleFacts(
                doc_id=result.documents[document].doc_id,
                method=method.key,
                span=span if len(span) <= SPAN_CHARS else span[:SPAN_CHARS] + "…",
                overlap=None if overlap is None else round(float(overlap[document]), 4),
                training=matches.training.get(document),
            )
        )
    return examples


def gate(
    tasks: list[TaskContaminationFacts], spec: ContaminationSpec
) -> tuple[list[TaskContaminationFacts], list[str]]:
    """The tasks (marked when above max_share and on_exceed is mark) and the failures
    (the tasks above max_share when on_exceed is refuse), one line each."""
    if spec.max_share is None:
        return tasks, []
    above = [task for task in tasks if task.share > spec.max_share]
    lines = [
        f"{task.task}: {task.any_method} of {task.documents} documents "
        f"({task.share:.1%}) found in the training data, above max_share {spec.max_share:.1%}"
        for task in above
    ]
    if spec.on_exceed == "refuse":
        return tasks, lines
    names = {task.task for task in above}
    marked = [task.model_copy(update={"marked": task.task in names}) for task in tasks]
    return marked, []
