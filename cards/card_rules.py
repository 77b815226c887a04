"""Rules that span a card's fields, checked on plain card data.

They run on dicts rather than on validated models so that lint can report them on a
card that also has field errors (pydantic skips after-validators then). Malformed
parts are skipped here: field validation reports those. ``CardMetadata`` raises the
errors among them (so model-release never writes such a card); warnings are lint's.

Results in a model-index: the Hub files them by task, dataset type, config, split and
revision (huggingface_hub ``EvalResult.unique_identifier``), and shows each metric by
its ``name``, else its ``type``. So a result is a duplicate only when all of that and
the metric's type, name and config are the same; several metrics of one type under
one dataset are fine when their names tell them apart (a multilingual card's
per-language accuracies), and only a warning when the Hub would show two of them
under one label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class CardProblem:
    path: tuple
    """Where the value to blame lies in the card data, for its line."""
    kind: str
    severity: Literal["error", "warning"]
    message: str


# The kinds of errors that CardMetadata raises from these rules (lint reports them here).
WHOLE_CARD_KINDS = frozenset({"license_other", "relation_without_base", "duplicate_result"})
_DATASET_KEYS = ("type", "config", "split", "revision")


def whole_card_problems(data: dict) -> list[CardProblem]:
    problems: list[CardProblem] = []
    if data.get("license") is None:
        message = "no license: the Hub will show none; add license: <id> (or license: other)"
        problems.append(CardProblem((), "no_license", "warning", message))
    if data.get("license") == "other" and not (
        data.get("license_name") and data.get("license_link")
    ):
        message = "license: other needs license_name and license_link (the license's own page)"
        problems.append(CardProblem(("license",), "license_other", "error", message))
    if data.get("base_model_relation") and not data.get("base_model"):
        message = "base_model_relation is set but base_model is missing"
        problems.append(
            CardProblem(("base_model_relation",), "relation_without_base", "error", message)
        )
    entries = data.get("model-index")
    for e, entry in enumerate(entries if isinstance(entries, list) else []):
        results = _get(entry, "results")
        for path, severity, message in _repeated_results(
            results if isinstance(results, list) else []
        ):
            kind = "duplicate_result" if severity == "error" else "same_label"
            problems.append(
                CardProblem(("model-index", e, "results", *path), kind, severity, message)
            )
    return problems


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _repeated_results(results: list) -> list[tuple[tuple, str, str]]:
    """Metrics given twice (errors) or shown under one label (warnings), with where."""
    exact: dict[tuple, str] = {}
    shown: dict[tuple, str] = {}
    found = []
    for i, result in enumerate(results):
        task, dataset = _get(result, "task"), _get(result, "dataset")
        identity = (_get(task, "type"), *(_get(dataset, k) for k in _DATASET_KEYS))
        metrics = _get(result, "metrics")
        for j, metric in enumerate(metrics if isinstance(metrics, list) else []):
            kind = _get(metric, "type")
            if kind is None:
                continue  # malformed: the field checks report it
            name, config = _get(metric, "name"), _get(metric, "config")
            here, on = f"results[{i}].metrics[{j}]", _get(dataset, "type")
            full = repr((*identity, kind, name, config))
            label = repr((*identity, name or kind))
            if full in exact:
                message = f"duplicate result: {kind} on {on} is already given at {exact[full]}"
                found.append(((i, "metrics", j), "error", message))
            elif label in shown:
                message = (
                    f"{kind} on {on}: the Hub shows this and {shown[label]} both as "
                    f"{name or kind!r}; give each metric a name that tells them apart"
                )
                found.append(((i, "metrics", j), "warning", message))
            exact.setdefault(full, here)
            shown.setdefault(label, here)
    return found
