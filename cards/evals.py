"""Stored eval results: one record per (task, metric), from whichever harness made them.

``load_results`` reads lm-evaluation-harness ``results_*.json`` files
(``cards.lmeval``) and the simple YAML/CSV format (``cards.simple_results``), and
merges them: for each task, metric and filter the newest run wins (the file's
``date``; files without one count as older than dated files, and among themselves the
later path wins). Every record keeps the file it came from, so the card can say where
each number was read.

``to_eval_results`` / ``to_model_index`` turn records into the card's model-index
through huggingface_hub's own ``EvalResult`` types; ``eval_results_files`` writes the
Hub's newer ``.eval_results/*.yaml`` entries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from cards import lmeval, simple_results, yamlio
from cards.errors import CardError
from cards.records import TASK_TYPE, EvalRecord

EVAL_RESULTS_DIR = ".eval_results"
"""The Hub's folder of eval result entries, in a model repo."""


def load_results(paths: Iterable[str | Path]) -> list[EvalRecord]:
    """Read and merge results files (see the module docstring), sorted by task, metric."""
    readers = {".json": lmeval.read, ".yaml": simple_results.read_yaml}
    readers |= {".yml": simple_results.read_yaml, ".csv": simple_results.read_csv}
    files = []
    for path in map(Path, paths):
        reader = readers.get(path.suffix.lower())
        if reader is None:
            raise CardError(
                f"{path}: unknown results format; give lm-eval results_*.json, .yaml or .csv"
            )
        files.append((reader, path))
    return merge_records(reader(path) for reader, path in files)


def merge_records(groups: Iterable[Iterable[EvalRecord]]) -> list[EvalRecord]:
    """One record per (task, metric, filter), sorted by it: the newest (its ``date``;
    undated counts as older than dated), and among equals the one of the later group
    (a later results file)."""
    newest: dict[tuple, tuple[tuple, EvalRecord]] = {}
    for order, records in enumerate(groups):
        for record in records:
            rank = (record.date is not None, record.date.timestamp() if record.date else 0, order)
            if record.key not in newest or rank >= newest[record.key][0]:
                newest[record.key] = (rank, record)
    return [newest[key][1] for key in sorted(newest)]


def _dataset_types(records: Sequence[EvalRecord]) -> list[str]:
    """The model-index dataset type of each record: its Hub dataset id where that id is
    its task's alone, else the task's own name.

    huggingface_hub files results under one (dataset type, config, split) together, in
    the first one's name: two tasks that read the same dataset (a task and its
    chain-of-thought variant) would share a row, and the second task's scores would be
    shown under the first's name. Records without a Hub dataset (local data, groups)
    have no id to share, and use the task name too.
    """
    tasks_by_identity: dict[tuple, set[str]] = {}
    for r in records:
        tasks_by_identity.setdefault((r.dataset, r.dataset_config, r.split), set()).add(r.task)
    return [
        r.dataset
        if r.dataset and tasks_by_identity[(r.dataset, r.dataset_config, r.split)] == {r.task}
        else r.task
        for r in records
    ]


def dataset_label(record: EvalRecord) -> str:
    """The task as the card names it: a group says it is one."""
    if record.is_group:
        return f"{record.task} (group of {len(record.subtasks)} tasks)"
    return record.task


def to_eval_results(records: Sequence[EvalRecord], source_url: str | None = None) -> list:
    """The records as huggingface_hub ``EvalResult`` objects (one per score).

    n-shot goes where the Open LLM Leaderboard put it, ``dataset.args.num_few_shot``;
    a filter other than lm-eval's default ``none`` becomes the metric config, and is
    named in the metric's name, so two filters of one metric read apart on the Hub.
    """
    from huggingface_hub import EvalResult

    return [
        EvalResult(
            task_type=TASK_TYPE,
            dataset_type=dataset_type,
            dataset_name=dataset_label(r),
            dataset_config=r.dataset_config,
            dataset_split=r.split,
            dataset_args=None if r.n_shot is None else {"num_few_shot": r.n_shot},
            metric_type=r.metric,
            metric_value=r.value,
            metric_name=r.metric_label if r.named_filter else None,
            metric_config=r.named_filter,
            source_name=Path(r.source).name if source_url else None,
            source_url=source_url,
        )
        for r, dataset_type in zip(records, _dataset_types(records), strict=True)
    ]


def to_model_index(records: Sequence[EvalRecord], model_name: str) -> list[dict]:
    """The card's ``model-index`` value, built by huggingface_hub itself."""
    from huggingface_hub.repocard_data import eval_results_to_model_index

    if not records:
        raise CardError("no eval records to put in model-index; pass --results or drop it")
    return eval_results_to_model_index(model_name, to_eval_results(records))


def eval_results_files(records: Sequence[EvalRecord]) -> dict[str, str]:
    """``.eval_results/<task>-<metric>.yaml`` texts for the Hub's benchmark leaderboards.

    One score a file, as the Hub asks for variants of one benchmark. Only records read
    from a Hub dataset can be listed there (``EvalRecord`` keeps no other dataset).
    The entry's ``task_id`` is the harness task name; a benchmark's own ``eval.yaml``
    may name it differently.
    """
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    files: dict[str, str] = {}
    for r in records:
        if not r.dataset:
            continue
        how = [r.harness + (f" {r.harness_version}" if r.harness_version else "")]
        how += [f"{r.n_shot}-shot"] if r.n_shot is not None else []
        how += [r.metric_label]
        entry = EvalResultEntry(
            dataset_id=r.dataset,
            task_id=r.task,
            value=r.value,
            date=r.date.isoformat() if r.date else None,
            notes=", ".join(how),
        )
        stem = "-".join(part for part in (r.task, r.metric, r.named_filter) if part)
        text = yamlio.dump(eval_result_entries_to_yaml([entry]))
        files[f"{EVAL_RESULTS_DIR}/{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem)}.yaml"] = text
    return files
