"""A plain results format for harnesses other than lm-evaluation-harness.

YAML: run-wide fields at the top, one mapping per score under ``results``::

    harness: my-harness            # required: what produced the numbers
    harness_version: "1.4.0"       # optional, like every field below
    model: my-org/my-model
    model_revision: 0123abcd
    date: 2026-01-15T10:30:00Z     # newer files win when scores collide
    results:
      - task: arc_easy             # required
        metric: acc                # required
        value: 0.7348              # required: a finite number
        stderr: 0.0091
        n_shot: 0
        filter: none
        task_version: "1.0"
        dataset: allenai/ai2_arc   # Hub dataset id, for model-index and .eval_results
        dataset_config: ARC-Easy
        split: test
        higher_is_better: true

CSV: one score a row; the header names the same fields (run-wide ones may be
columns too); an empty cell means "not given".

Unknown fields are errors, so a typo (``n-shot:``) is reported, not dropped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import yaml
from pydantic import ValidationError

from cards import yamlio
from cards.errors import CardError, invalid
from cards.records import EvalRecord, read_text

_RUN_FIELDS = ("harness", "harness_version", "model", "model_revision", "date")


def read_yaml(path: Path) -> list[EvalRecord]:
    try:
        data = yamlio.load(read_text(path))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise CardError(f"{where}: invalid YAML: {getattr(error, 'problem', error)}") from error
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise CardError(
            f"{path}: expected a mapping with a 'results' list (see cards.simple_results)"
        )
    unknown = set(data) - {*_RUN_FIELDS, "results"}
    if unknown:
        raise CardError(f"{path}: unknown top-level field {sorted(unknown)[0]!r}")
    run = {key: data[key] for key in _RUN_FIELDS if key in data}
    rows = [row if isinstance(row, dict) else {"": row} for row in data["results"]]
    return [_record({**run, **row}, path, f"results[{i}]") for i, row in enumerate(rows)]


def read_csv(path: Path) -> list[EvalRecord]:
    rows = csv.DictReader(read_text(path).splitlines())
    return [
        _record({k: v for k, v in row.items() if v not in ("", None)}, path, f"line {n}")
        for n, row in enumerate(rows, start=2)
    ]


def _record(fields: dict, path: Path, where: str) -> EvalRecord:
    try:
        return EvalRecord(**{**fields, "source": str(path)})
    except ValidationError as error:
        raise invalid(f"{path}: {where}", error) from error
    except TypeError as error:  # a non-string key from YAML
        raise CardError(f"{path}: {where}: {error}") from error
