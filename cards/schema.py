"""The Hub's model card metadata as pydantic models.

``CardMetadata`` is what model-release writes, so it is strict: unknown keys are
errors (``licence:`` is a typo, not a silent default), ids come from the Hub's own
lists (cards/data/), and model-index values must be finite numbers in a plausible
range. ``cards.lint`` validates anyone's card against the same models and turns the
errors into ``file:line`` messages.

A rule that can only be checked on a whole object (a duplicated result, ``license:
other`` without a name) raises ``PydanticCustomError`` with ``ctx["at"]``: the path,
relative to the error's own location, of the value to blame, so lint can point at
its line.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from cards import vocab


def is_repo_id(value: str, *, owner_required: bool = False) -> bool:
    """Whether ``value`` is a Hub repo id, by huggingface_hub's own rules (``name`` or
    ``owner/name``; with ``owner_required``, only the latter): the one repo-id rule."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return "/" in value or not owner_required


def _repo_id(value: str) -> str:
    if not is_repo_id(value):
        raise ValueError(f"{value!r} is not a Hub repo id (expected 'owner/name')")
    return value


def _license(value: str) -> str:
    if value not in vocab.licenses():
        raise ValueError(
            f"{value!r} is not a Hub license id; use one from "
            "https://huggingface.co/docs/hub/repositories-licenses or 'other'"
        )
    return value


def _language(value: str) -> str:
    if value not in vocab.languages():
        hint = value.split("-")[0].split("_")[0].lower()
        also = f"; did you mean {hint!r}?" if hint in vocab.languages() else ""
        raise ValueError(f"{value!r} is not an ISO 639-1/639-3 language code{also}")
    return value


def _task(value: str) -> str:
    if value not in vocab.tasks():
        raise ValueError(f"{value!r} is not a Hub pipeline tag (e.g. 'text-generation')")
    return value


def _as_list(value: Any) -> Any:
    """The Hub accepts ``key: x`` for ``key: [x]``; we store the list form."""
    return [value] if isinstance(value, str) else value


Text = Annotated[str, StringConstraints(min_length=1)]
RepoId = Annotated[str, StringConstraints(min_length=1), AfterValidator(_repo_id)]
Language = Annotated[str, StringConstraints(min_length=1), AfterValidator(_language)]
OneOrMany = BeforeValidator(_as_list)
Score = Annotated[float, Strict(), AllowInfNan(False)]

# Metric ids whose values are fractions or percentages: anything else there is a bug.
_BOUNDED = re.compile(
    r"^(acc|accuracy|exact_match|em|f1|precision|recall|pass@\d+|mc[12]|rouge|bleu|chrf|"
    r"bertscore|matthews|win_rate)",
    re.IGNORECASE,
)


def is_bounded_metric(metric_type: str) -> bool:
    """True for accuracy-like metrics, whose values lie in [0, 1] or [0, 100]."""
    return bool(_BOUNDED.match(metric_type)) and not metric_type.lower().startswith("matthews")


def whole_card_problems(data: dict) -> list[tuple[tuple, str, str]]:
    """Rules that span fields, as ``(path, kind, message)``, on plain card data.

    They run on dicts rather than on validated models so that lint can report them on
    a card that also has field errors (pydantic skips after-validators then).
    Malformed parts are skipped here: field validation reports those.
    """
    problems: list[tuple[tuple, str, str]] = []
    if data.get("license") == "other" and not (
        data.get("license_name") and data.get("license_link")
    ):
        message = "license: other needs license_name and license_link (the license's own page)"
        problems.append((("license",), "license_other", message))
    if data.get("base_model_relation") and not data.get("base_model"):
        message = "base_model_relation is set but base_model is missing"
        problems.append((("base_model_relation",), "relation_without_base", message))
    entries = data.get("model-index")
    for e, entry in enumerate(entries if isinstance(entries, list) else []):
        results = entry.get("results") if isinstance(entry, dict) else None
        for path, message in _duplicate_results(results if isinstance(results, list) else []):
            problems.append((("model-index", e, "results", *path), "duplicate_result", message))
    return problems


def _duplicate_results(results: list) -> list[tuple[tuple, str]]:
    """Metrics given twice for one task, dataset, config, split and revision."""

    def get(obj: Any, key: str) -> Any:
        return obj.get(key) if isinstance(obj, dict) else None

    seen: dict[tuple, str] = {}
    found = []
    for i, result in enumerate(results):
        task, dataset = get(result, "task"), get(result, "dataset")
        identity = (get(task, "type"), *(get(dataset, k) for k in _DATASET_KEYS))
        metrics = get(result, "metrics")
        for j, metric in enumerate(metrics if isinstance(metrics, list) else []):
            if get(metric, "type") is None:
                continue  # malformed: the field checks report it
            key = repr((*identity, get(metric, "type"), get(metric, "config")))
            here = f"results[{i}].metrics[{j}]"
            if key in seen:
                message = (
                    f"duplicate result: {get(metric, 'type')} on {get(dataset, 'type')} "
                    f"is already given at {seen[key]}"
                )
                found.append(((i, "metrics", j), message))
            else:
                seen[key] = here
    return found


# The Hub groups model-index results by these (huggingface_hub EvalResult.unique_identifier).
_DATASET_KEYS = ("type", "config", "split", "revision")


def located(kind: str, message: str, *at: str | int) -> PydanticCustomError:
    """An error whose value lies at ``at`` below the validated object (see module doc)."""
    return PydanticCustomError(kind, message.replace("{", "{{").replace("}", "}}"), {"at": at})


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Task(_Strict):
    type: Text
    name: str | None = None


class Dataset(_Strict):
    type: Text
    name: Text
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    args: dict[str, Any] | None = None


class Metric(_Strict):
    type: Text
    value: Score
    name: str | None = None
    config: str | None = None
    args: dict[str, Any] | None = None
    verified: bool | None = None
    verify_token: str | None = Field(default=None, alias="verifyToken")

    @field_validator("value")
    @classmethod
    def _plausible(cls, value: float, info) -> float:
        metric = info.data.get("type")
        if metric and is_bounded_metric(metric) and not 0 <= value <= 100:
            raise ValueError(f"{metric} = {value} is impossible: must lie in [0, 1] or [0, 100]")
        return value


class Source(_Strict):
    url: Text
    name: str | None = None


class Result(_Strict):
    task: Task
    dataset: Dataset
    metrics: list[Metric] = Field(min_length=1)
    source: Source | None = None


class ModelIndexEntry(_Strict):
    name: Text
    results: list[Result] = Field(min_length=1)


class CardMetadata(_Strict):
    """The YAML front matter of a model card, as the Hub reads it."""

    license: Annotated[str, AfterValidator(_license)] | None = None
    license_name: Text | None = None
    license_link: Text | None = None
    language: Annotated[list[Language], OneOrMany] | None = None
    base_model: Annotated[list[RepoId], OneOrMany] | None = None
    base_model_relation: Literal["adapter", "merge", "quantized", "finetune"] | None = None
    datasets: Annotated[list[RepoId], OneOrMany] | None = None
    tags: Annotated[list[Text], OneOrMany] | None = None
    pipeline_tag: Annotated[str, AfterValidator(_task)] | None = None
    library_name: Text | None = None
    metrics: Annotated[list[Text], OneOrMany] | None = None
    model_index: list[ModelIndexEntry] | None = Field(
        default=None, alias="model-index", min_length=1, max_length=1
    )
    new_version: RepoId | None = None

    @model_validator(mode="after")
    def _whole_card(self) -> CardMetadata:
        for path, kind, message in whole_card_problems(self.to_dict()):
            raise located(kind, message, *path)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The front matter as a plain dict, Hub key names, nothing unset."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if len(self.base_model or ()) == 1:
            data["base_model"] = self.base_model[0]
        return data

    def to_model_card_data(self):
        """This metadata as huggingface_hub's ``ModelCardData`` (what the Hub parses)."""
        from huggingface_hub import ModelCardData

        return ModelCardData(**self.to_dict())

    @classmethod
    def from_model_card_data(cls, data) -> CardMetadata:
        """Read a huggingface_hub ``ModelCardData`` (e.g. ``ModelCard.load(...).data``)."""
        return cls.model_validate(data.to_dict())


# The keys a card's front matter may have in our schema, as written in YAML.
METADATA_KEYS = frozenset(f.alias or name for name, f in CardMetadata.model_fields.items())
# Error types raised by whole_card_problems through the after-validator.
WHOLE_CARD_KINDS = frozenset({"license_other", "relation_without_base", "duplicate_result"})
