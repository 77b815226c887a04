"""The Hub's model card metadata as pydantic models.

``CardMetadata`` is what model-release writes, so it is strict: unknown keys are
errors (``licence:`` is a typo, not a silent default), ids come from the Hub's own
lists (cards/data/), and model-index values must be finite numbers in a plausible
range. ``cards.lint`` validates anyone's card against the same models and turns the
errors into ``file:line`` messages.

A rule that can only be checked on a whole card (``cards.card_rules``: a duplicated
result, ``license: other`` without a name) raises ``PydanticCustomError`` with
``ctx["at"]``: the path, relative to the error's own location, of the value to blame,
so lint can point at its line. Only its errors do: its warnings are lint's to report.
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
    r"^(acc|accuracy|exact_match|em|f1(?!\d)|precision|recall|pass@\d+|mc[12]|rouge|bleu|chrf|"
    r"bertscore|matthews|win_rate)",
    re.IGNORECASE,
)


def is_bounded_metric(metric_type: str) -> bool:
    """True for accuracy-like metrics, whose values lie in [0, 1] or [0, 100]."""
    return bool(_BOUNDED.match(metric_type)) and not metric_type.lower().startswith("matthews")


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
    # load_dataset() arguments; the Trainer writes the config name here as a string
    # (``args: plain_text``), which the Hub accepts.
    args: dict[str, Any] | str | None = None


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
        from cards.card_rules import whole_card_problems

        for problem in whole_card_problems(self.to_dict()):
            if problem.severity == "error":
                raise located(problem.kind, problem.message, *problem.path)
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
