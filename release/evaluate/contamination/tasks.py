"""The test side: the documents of every lm-eval task the release reports.

Those are eval.tasks (names, or the tasks of its folder) and the tasks of the stored
results (eval.results), built by lm-eval's own ``TaskManager`` offline: a task whose
data is neither local nor in the datasets cache is listed as not checked, never
downloaded. A document's text is the task's ``doc_to_decontamination_query`` where it
declares one (``should_decontaminate``), else its prompt and target as lm-eval joins them
(the target of a multiple-choice task is its correct choice's text).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from cards.evals import load_results
from release.core.quiet import held_stderr
from release.evaluate.contamination.check import TaskDocument
from release.evaluate.contamination.facts import SkippedTaskFacts
from release.evaluate.contamination.offline import offline
from release.evaluate.contamination.settings import ContaminationSettings
from release.evaluate.harness import task_names


def reported_tasks(spec: ContaminationSettings) -> list[str]:
    """The task names of eval.tasks, then those of the stored results not among them."""
    names = task_names(spec.tasks) if spec.tasks is not None else []
    stored = [record.task for record in load_results(spec.results)] if spec.results else []
    return list(dict.fromkeys([*names, *stored]))


def test_documents(
    spec: ContaminationSettings,
) -> tuple[list[TaskDocument], list[SkippedTaskFacts]]:
    """Every document of the reported tasks, and the tasks lm-eval could not build here.
    lm-eval's own tasks are indexed only when a name is not one of the folder's (that
    index reads thousands of YAML files)."""
    from lm_eval.tasks import TaskManager

    folder = spec.tasks.folder if spec.tasks is not None else None
    documents: list[TaskDocument] = []
    skipped: list[SkippedTaskFacts] = []
    done: set[str] = set()
    with offline(), held_stderr(), contextlib.chdir(folder or Path.cwd()):
        local = TaskManager(include_path=str(folder), include_defaults=False) if folder else None
        everything = None
        for name in reported_tasks(spec):
            manager = local
            if local is None or name not in local.all_tasks:
                everything = everything or TaskManager(include_path=str(folder) if folder else None)
                manager = everything
            try:
                built = manager.load([name])["tasks"]
                for task_name, task in sorted(built.items()):
                    if task_name not in done:
                        done.add(task_name)
                        documents += _documents(task_name, task)
            except Exception as exc:  # lm-eval raises many kinds for a task it cannot build
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                skipped.append(SkippedTaskFacts(task=name, reason=first[:200]))
    return documents, skipped


def _documents(name: str, task: Any) -> list[TaskDocument]:
    return [
        TaskDocument(task=name, doc_id=doc_id, text=document_text(task, doc))
        for doc_id, doc in enumerate(task.eval_docs)
    ]


def document_text(task: Any, doc: dict) -> str:
    """What is compared of one document (see the module docstring)."""
    if task.should_decontaminate():
        return str(task.doc_to_decontamination_query(doc))
    prompt = task.doc_to_text(doc)
    target = task.doc_to_target(doc)
    choices = task.doc_to_choice(doc) if task.config.doc_to_choice is not None else None
    if isinstance(prompt, int) and choices:  # multiple inputs: the prompt is the choice
        prompt = choices[prompt]
    targets = target if isinstance(target, list) else [target]
    texts = [choices[t] if isinstance(t, int) and choices else str(t) for t in targets]
    delimiter = task.config.target_delimiter or " "
    return f"{prompt}{delimiter}{' '.join(texts)}" if prompt else " ".join(texts)
