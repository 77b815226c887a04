"""Read lm-evaluation-harness 0.4.x ``results_*.json`` files into ``EvalRecord``s.

The file holds ``results`` (and, for task groups, ``groups``) keyed by task, whose
keys are ``"<metric>,<filter>"`` pairs such as ``"acc,none"`` next to
``"acc_stderr,none"``; ``n-shot``, ``versions``, ``higher_is_better`` and
``configs`` (dataset path, name and split) are keyed by task too. ``config`` holds
the model arguments and ``model_sha``; ``lm_eval_version`` (or ``git_hash`` in older
files) and ``date`` (a UNIX time) describe the run.

A group (``group_subtasks`` maps it to its members) has its aggregate under
``groups``, and often again under ``results``; it is read once, as a group record
that names its subtasks, and each member names its group.

A metric the harness could not compute is written as ``"N/A"``; it is left out, and an
``"N/A"`` stderr (no bootstrap) becomes ``None``. A NaN score is an error, not a skip.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cards.errors import CardError, invalid
from cards.records import EvalRecord, read_text

HARNESS = "lm-evaluation-harness"
_NOT_METRICS = {"alias", "name", "sample_len", "sample_count"}


def read(path: Path) -> list[EvalRecord]:
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise CardError(f"{path}:{error.lineno}: invalid JSON: {error.msg}") from error
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise CardError(
            f"{path}: no 'results' object; is this an lm-evaluation-harness results_*.json?"
        )
    run = _run_fields(data, path)
    tables = {**_dict(data.get("groups")), **data["results"]}
    members = {
        group: tuple(subtasks)
        for group, subtasks in _dict(data.get("group_subtasks")).items()
        if isinstance(subtasks, list) and subtasks
    }
    parent = {task: group for group, subtasks in members.items() for task in subtasks}
    records = []
    for task, scores in tables.items():
        for key, value in _dict(scores).items():
            metric, _, filter_ = key.partition(",")
            if key in _NOT_METRICS or not filter_ or metric.endswith("_stderr"):
                continue
            if value is None or (isinstance(value, str) and value.strip() in ("N/A", "")):
                continue  # not computed
            if isinstance(value, str):
                raise CardError(
                    f"{path}: results.{_shown(task)}.{key}: the score {value!r} is a string, "
                    "not a number (write it without quotes)"
                )
            fields = {
                **run,
                **_task_fields(data, task, metric),
                "task": task,
                "metric": metric,
                "filter": filter_,
                "value": value,
                "stderr": scores.get(f"{metric}_stderr,{filter_}"),
                "group": parent.get(task),
                "subtasks": members.get(task, ()),
            }
            if not _number(fields["stderr"]):
                fields["stderr"] = None
            try:
                records.append(EvalRecord(**fields))
            except ValidationError as error:
                raise invalid(f"{path}: results.{_shown(task)}.{key}", error) from error
    return records


def _run_fields(data: dict, path: Path) -> dict[str, Any]:
    config = _dict(data.get("config"))
    args = _model_args(config.get("model_args"))
    version = data.get("lm_eval_version") or (
        f"git {data['git_hash']}" if data.get("git_hash") else None
    )
    date = data.get("date")
    return {
        "harness": HARNESS,
        "harness_version": version,
        "model": args.get("pretrained") or data.get("model_name"),
        "model_revision": config.get("model_sha") or args.get("revision"),
        "date": datetime.fromtimestamp(date, UTC) if _number(date) else None,
        "source": str(path),
    }


def _task_fields(data: dict, task: str, metric: str) -> dict[str, Any]:
    config = _dict(_dict(data.get("configs")).get(task))
    n_shot = _dict(data.get("n-shot")).get(task, config.get("num_fewshot"))
    version = _dict(data.get("versions")).get(task)
    return {
        "n_shot": n_shot if isinstance(n_shot, int) else None,
        "task_version": None if version is None else str(version),
        "higher_is_better": _dict(_dict(data.get("higher_is_better")).get(task)).get(metric),
        "dataset": config.get("dataset_path") or None,
        "dataset_config": config.get("dataset_name") or None,
        "split": config.get("test_split") or config.get("validation_split") or None,
    }


def _model_args(value: Any) -> dict[str, Any]:
    """``model_args`` is ``"pretrained=x,revision=y"`` or, in newer files, a dict."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return {}
    pairs = (item.partition("=") for item in value.split(",") if "=" in item)
    return {key.strip(): val.strip() for key, _, val in pairs}


def _shown(name: str) -> str:
    """A task name for a one-line message: a line break in it is shown escaped."""
    return name.encode("unicode_escape").decode("ascii") if not name.isprintable() else name


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
