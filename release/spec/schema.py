"""ReleaseSpec: the schema of release.yaml.

The spec is the whole input of a release: the CLI runs it, the wizard edits and saves it,
the GitHub Action runs it again on a tag. It is frozen and forbids unknown keys, so a typo
is an error with its line number rather than a silently ignored option.

Relative paths in release.yaml are relative to the file's folder, and are made absolute
while the file is loaded (``load_spec``), so the rest of the code never sees a relative
path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cards import yamlio
from cards.schema import is_repo_id
from release.core.errors import MissingInputError, SpecError
from release.core.paths import relative_if_inside
from release.core.redact import secret_in
from release.spec.paths import SpecPath
from release.spec.quant_types import DEFAULT_TYPES, QUANT_NAMES
from release.spec.recipe import MergeRecipe, recipe_yaml_loc
from release.spec.yaml_lines import YamlLocator

SPEC_VERSION = 1

GGUFType = Literal[QUANT_NAMES]  # type: ignore[valid-type]  # one row each in quant_types
GGUF_TYPES: tuple[str, ...] = get_args(GGUFType)

_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20}
_SIZE_UNITS["GIB"] = 2**30
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def parse_size(value: int | str) -> int:
    """'2GB', '500MiB', 1000000 -> bytes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)?\s*", value, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"not a size: {value!r} (write e.g. 2GB, 500MB or 800MiB)")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[(unit or "").upper()])


def _check_repo_id(value: str | None) -> str | None:
    if value is not None and not is_repo_id(value, owner_required=True):
        raise ValueError(f"not a Hub repo id: {value!r} (write owner/name)")
    return value


RepoId = Annotated[str, AfterValidator(_check_repo_id)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BaseModelSpec(_Section):
    """The base model the adapter was trained on.

    ``repo_id`` is the base's identity on the Hub (it goes on the card as base_model);
    ``path`` is a local copy of its weights. With only ``repo_id``, the weights are
    downloaded at ``revision``.
    """

    repo_id: RepoId | None = None
    revision: str | None = None
    path: SpecPath | None = None
    fingerprint: str | None = Field(
        default=None, description="Expected base fingerprint (sha256); a mismatch stops intake."
    )
    allow_fingerprint_mismatch: bool = Field(
        default=False,
        description="Accept a base whose fingerprint differs from the recorded one.",
    )
    trust_remote_code: bool = False
    dequantize: bool = Field(
        default=False,
        description="Merge onto a bitsandbytes 4-bit base (QLoRA, a -bnb-4bit repo) "
        "dequantized, instead of refusing it. Its weights keep their 4-bit rounding, so the "
        "merge differs from one onto the full-precision base; the log and the card say so.",
    )

    @model_validator(mode="after")
    def _needs_a_source(self) -> BaseModelSpec:
        if self.repo_id is None and self.path is None:
            raise ValueError("give base.repo_id (a Hub id), base.path (a local folder), or both")
        return self


class AdapterSpec(_Section):
    """The LoRA adapter: a local folder (``path``) or a Hub repo (``repo_id`` at
    ``revision``), downloaded like the base. Exactly one of the two."""

    path: SpecPath | None = None
    repo_id: RepoId | None = None
    revision: str | None = None
    allow_pickle: bool = Field(
        default=False,
        description="Accept a pickle-only adapter_model.bin (loaded with weights_only=True).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> AdapterSpec:
        if (self.path is None) == (self.repo_id is None):
            raise ValueError(
                "give adapter.path (a local folder) or adapter.repo_id (a Hub id), not both"
                if self.path
                else "give adapter.path (a local folder) or adapter.repo_id (a Hub id)"
            )
        if self.revision is not None and self.repo_id is None:
            raise ValueError("adapter.revision needs adapter.repo_id")
        return self


class MergeSpec(_Section):
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    shard_size: int = Field(default=2 * 10**9, gt=0, description="Largest output shard, in bytes.")
    recipe: MergeRecipe | None = Field(
        default=None,
        description="Several models into one (mergekit's YAML vocabulary), inline or the "
        "path of a YAML file (see release.spec.recipe).",
    )

    @field_validator("shard_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe_file(cls, value: Any, info: ValidationInfo) -> Any:
        """A string names a YAML file of the recipe (relative to release.yaml's folder)."""
        if not isinstance(value, str):
            return value
        path = Path(value).expanduser()
        if not path.is_absolute() and (base_dir := (info.context or {}).get("base_dir")):
            path = Path(base_dir) / path
        try:
            return yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read the recipe file {path}: {exc}") from None


class TasksSpec(_Section):
    """Benchmarks the evaluate stage runs on the merged model with lm-evaluation-harness."""

    names: list[str] = Field(
        default_factory=list, description="lm-eval task or group names (hellaswag, mmlu…)."
    )
    folder: SpecPath | None = Field(
        default=None,
        description="A folder of lm-eval task YAML files (its tasks run unless names says "
        "which); lm-eval's --include_path, and where their data_files are read from.",
    )
    num_fewshot: int | None = Field(default=None, ge=0)
    limit: float | None = Field(
        default=None, gt=0, description="Examples per task (or a share of them, below 1)."
    )
    batch_size: int | Literal["auto"] = 1
    apply_chat_template: bool = False
    backend: Literal["hf", "vllm"] = Field(
        default="hf", description="lm-eval's model: hf (accelerate), or vllm with a GPU."
    )
    compare_base: bool = Field(
        default=False,
        description="Run the same tasks on the base model too, for the card's comparison "
        "column (the model-index and the gate keep only this release's scores).",
    )
    gguf: list[GGUFType] = Field(
        default_factory=list,
        description="GGUF types (of gguf.types) whose files run the same tasks, through "
        "llama.cpp in process, after the GGUF stage's checks: the card's table gets a "
        "column per type.",
    )

    @model_validator(mode="after")
    def _something_to_run(self) -> TasksSpec:
        if not self.names and self.folder is None:
            raise ValueError("give names (lm-eval tasks) or folder (task YAML files)")
        from importlib.util import find_spec

        if find_spec("lm_eval") is None:
            raise ValueError(
                "lm-evaluation-harness is not installed: pip install 'model-release[lm-eval]'"
            )
        return self


ContaminationMethod = Literal["exact", "substring", "word_ngrams", "char_ngrams"]
CONTAMINATION_METHODS: tuple[str, ...] = get_args(ContaminationMethod)


class TrainingDataSpec(_Section):
    """Training data the contamination check reads: local files, or a Hub dataset in the
    local ``datasets`` cache. A plain string in the list is a path."""

    path: SpecPath | None = Field(
        default=None, description="A JSONL, JSON, Parquet or text file, or a folder of them."
    )
    hub: str | None = Field(
        default=None, description="A Hub dataset already in the local datasets cache."
    )
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    fields: list[str] = Field(
        default_factory=list,
        description="The fields to read; default: messages, instruction/output, "
        "prompt/completion, question/answer or text, whichever a record has.",
    )

    @model_validator(mode="before")
    @classmethod
    def _path_alone(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_source(self) -> TrainingDataSpec:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give path (local files) or hub (a cached dataset), one of them")
        if self.path is not None and not self.path.exists():
            raise ValueError(f"no such file or folder: {self.path}")
        return self


class ContaminationSpec(_Section):
    """Training data against the documents of the benchmarks the release reports."""

    training_data: list[TrainingDataSpec] = Field(min_length=1)
    methods: list[ContaminationMethod] = Field(
        default_factory=lambda: list(CONTAMINATION_METHODS), min_length=1
    )
    word_ngram: int = Field(
        default=13, ge=1, description="Words in an n-gram, as lm-eval's Janitor (13)."
    )
    char_ngrams: list[int] = Field(
        default_factory=lambda: [50, 30], min_length=1, description="Characters in an n-gram."
    )
    min_overlap: float = Field(
        default=0.3,
        gt=0,
        le=1,
        description="A test text counts as contaminated when this share of its character "
        "n-grams is in the training data.",
    )
    min_substring_chars: int = Field(
        default=30, ge=1, description="Shorter test texts are left out of the substring match."
    )
    max_share: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="The gate: a task with more than this share of contaminated documents "
        "refuses the release (on_exceed: refuse) or is marked contaminated on the card.",
    )
    on_exceed: Literal["refuse", "mark"] = "refuse"
    memory_cap: int = Field(
        default=2**30,
        gt=0,
        description="Memory for the training data's n-gram hashes (8 bytes each); past "
        "it they are kept on disk.",
    )

    @field_validator("memory_cap", mode="before")
    @classmethod
    def _cap_size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("methods", "char_ngrams")
    @classmethod
    def _no_repeats(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError("each at most once")
        return value

    @field_validator("char_ngrams")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(n < 1 for n in value):
            raise ValueError("n-gram sizes are at least 1")
        return value


class EvalGateSpec(_Section):
    """What a merge recipe's release must do beside its inputs (``merge.recipe``)."""

    no_worse_than: str = Field(
        min_length=1,
        description="A model of merge.recipe, as the recipe names it: the merged model's "
        "perplexity on the held-out text must not exceed this input's by more than "
        "tolerance.",
    )
    tolerance: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="How much worse than that input the merge may be, as a share of the "
        "input's perplexity (0.02: 2%).",
    )


class EvalSpec(_Section):
    enabled: bool = True
    tasks: TasksSpec | None = None
    prompts: list[str] | None = Field(
        default=None,
        description="Chat smoke-test prompts; default: prompts shipped with us; [] leaves "
        "the smoke test out (a model that cannot chat, such as a tiny random test model).",
    )
    heldout_text: SpecPath | None = None
    max_new_tokens: int = Field(default=48, ge=1, le=4096)
    min_top1_agreement: float = Field(
        default=0.9, ge=0, le=1, description="Merged vs base + adapter, on probe prompts."
    )
    max_merge_error: float = Field(
        default=0.25,
        gt=0,
        description="Mean logit difference of the merged model from PEFT's merge of base + "
        "adapter (rounded to the merged checkpoint's dtype), as a share of the adapter's own "
        "effect on the base's logits.",
    )
    max_perplexity_ratio: float = Field(
        default=1.5, gt=1, description="Fail when ppl(base+adapter) / ppl(base) exceeds this."
    )
    results: list[SpecPath] = Field(
        default_factory=list, description="Stored eval results of this release (lm-eval JSON…)"
    )
    previous: list[SpecPath] = Field(
        default_factory=list,
        description="The last release's manifest.json or stored results, for the gate; a "
        "manifest also leads the release history to the releases before it.",
    )
    max_task_drop: float = Field(default=0.20, ge=0, le=1)
    max_average_drop: float = Field(default=0.05, ge=0, le=1)
    contamination: ContaminationSpec | None = None
    gate: EvalGateSpec | None = None

    @model_validator(mode="after")
    def _contamination_has_tasks(self) -> EvalSpec:
        if self.contamination is None:
            return self
        if self.tasks is None and not self.results:
            raise ValueError(
                "contamination checks the documents of eval.tasks or of the tasks in "
                "eval.results: give one of them"
            )
        from importlib.util import find_spec

        if find_spec("lm_eval") is None:
            raise ValueError(
                "contamination reads the tasks' documents with lm-evaluation-harness, which "
                "is not installed: pip install 'model-release[lm-eval]'"
            )
        return self


DEFAULT_MAX_KLD = 0.5
"""README "What each quant costs": the measurements behind it."""
DEFAULT_MAX_QUANT_TASK_DROP = 0.20
"""As eval.max_task_drop: a file may lose on a task what a release may against the last."""


class GGUFSpec(_Section):
    types: list[GGUFType] = Field(default_factory=lambda: list(DEFAULT_TYPES))
    llama_cpp_dir: SpecPath | None = None
    max_kld: float = Field(
        default=DEFAULT_MAX_KLD,
        gt=0,
        description="Largest mean KL divergence (nats, llama-perplexity's figure) a GGUF "
        "file may have from the merged model on the held-out text; a file over it is "
        "refused.",
    )
    max_task_drop: float = Field(
        default=DEFAULT_MAX_QUANT_TASK_DROP,
        ge=0,
        description="With eval.tasks.gguf: the largest drop a file's score may have from "
        "the merged model's on any task, relative (a perplexity's rise counts as a drop); "
        "a file over it is refused.",
    )


class CardSpec(_Section):
    summary: str = ""
    intended_uses: str = ""
    limitations: str = ""
    training_data: str = ""
    license: str = "apache-2.0"
    license_name: str | None = None
    license_link: str | None = None
    language: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    datasets: list[str] = Field(default_factory=list)
    pipeline_tag: str = "text-generation"
    bibtex: str = Field(default="", description="Extra BibTeX entries to cite.")
    template_dir: SpecPath | None = Field(
        default=None, description="Templates that override ours file by file (_macros.md.j2)."
    )
    template: SpecPath | None = Field(
        default=None,
        description="The release's own model-card template (jinja2), rendered instead of ours "
        'with the same context; it can {% extends "model-release/model_card.md.j2" %} '
        "(docs/card-context.md).",
    )
    gguf_template: SpecPath | None = Field(
        default=None,
        description="The release's own GGUF-card template (jinja2), rendered instead of ours "
        'with the same context; it can {% extends "model-release/gguf_card.md.j2" %} '
        "(docs/card-context.md).",
    )

    def template_files(self) -> list[Path]:
        """The user's files the cards are rendered from, which the card stage keys and
        ``publish`` commits: template_dir, and card.template and card.gguf_template, each
        with the .j2 files beside it (those it can include)."""
        files = [self.template_dir] if self.template_dir else []
        for own in (self.template, self.gguf_template):
            if own:
                beside = sorted(own.parent.glob("*.j2"))
                files += [own, *(path for path in beside if path != own)]
        return list(dict.fromkeys(files))


class PushSpec(_Section):
    repo_id: RepoId | None = None
    gguf_repo_id: RepoId | None = None
    adapter_repo_id: RepoId | None = None
    private: bool = False
    create_pr: bool = False
    tag: bool = True


class ReleaseSpec(_Section):
    spec_version: Literal[1] = SPEC_VERSION
    name: str
    version: str
    base: BaseModelSpec
    adapter: AdapterSpec | None
    """Required, unless merge.recipe names the models (then it may be left out)."""
    workspace: SpecPath = Field(default=Path("build"), validate_default=True)
    merge: MergeSpec = MergeSpec()
    eval: EvalSpec = EvalSpec()
    gguf: GGUFSpec = Field(default_factory=GGUFSpec, validate_default=True)
    card: CardSpec = CardSpec()
    push: PushSpec = PushSpec()

    @model_validator(mode="before")
    @classmethod
    def _recipe_needs_no_adapter(cls, data: Any) -> Any:
        """A recipe names its own models: adapter: may be left out beside it."""
        if not isinstance(data, dict) or data.get("adapter") is not None:
            return data
        merge = data.get("merge")
        if isinstance(merge, dict) and merge.get("recipe") is not None:
            return {**data, "adapter": None}
        return {key: value for key, value in data.items() if key != "adapter"}  # required

    @field_validator("push")
    @classmethod
    def _adapter_to_push(cls, value: PushSpec, info: ValidationInfo) -> PushSpec:
        if value.adapter_repo_id and "adapter" in info.data and info.data["adapter"] is None:
            raise ValueError(
                "adapter_repo_id: this release has no adapter (merge.recipe names its "
                "models); leave push.adapter_repo_id out"
            )
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"{value!r} cannot be a file or repo name: use letters, digits, '.', '_' or '-'"
            )
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.fullmatch(r"v?\d+(\.\d+){0,2}([.-]?[A-Za-z0-9]+)*", value):
            raise ValueError(f"{value!r} is not a version (write e.g. 1.0.0)")
        return value.removeprefix("v")

    @field_validator("eval")
    @classmethod
    def _base_lm_eval_can_load(cls, value: EvalSpec, info: ValidationInfo) -> EvalSpec:
        """lm-eval loads the base as it lies; a base merged dequantized (base.dequantize)
        is not the model it would load, so its scores would compare with another model."""
        base = info.data.get("base")
        if value.tasks and value.tasks.compare_base and base and base.dequantize:
            raise ValueError(
                "tasks.compare_base cannot run on a base that needs base.dequantize: lm-eval "
                "loads the 4-bit checkpoint, not the dequantized base the merge used; "
                "leave compare_base out"
            )
        return value

    @field_validator("gguf")
    @classmethod
    def _benchmarked_types_are_exported(cls, value: GGUFSpec, info: ValidationInfo) -> GGUFSpec:
        """eval.tasks.gguf runs on files the GGUF stage writes: types of gguf.types."""
        evaluation = info.data.get("eval")
        tasks = evaluation.tasks if evaluation else None
        missing = [t for t in (tasks.gguf if tasks else []) if t not in value.types]
        if missing:
            raise ValueError(
                f"eval.tasks.gguf names {', '.join(missing)}, which gguf.types does not "
                "export; add it to gguf.types or leave it out of eval.tasks.gguf"
            )
        return value

    @field_validator("eval")
    @classmethod
    def _gate_names_an_input(cls, value: EvalSpec, info: ValidationInfo) -> EvalSpec:
        """eval.gate compares the merge with one of its inputs: a model of the recipe."""
        if value.gate is None:
            return value
        merge = info.data.get("merge")
        recipe = merge.recipe if merge else None
        name = value.gate.no_worse_than
        if recipe is None:
            raise ValueError(
                f"gate.no_worse_than: {name!r} names an input of merge.recipe, and there is "
                "no recipe; leave eval.gate out"
            )
        models = recipe.input_names
        if name not in models:
            raise ValueError(
                f"gate.no_worse_than: {name!r} is not a model of merge.recipe; use one of "
                + ", ".join(models)
            )
        return value

    _base_dir: Path | None = PrivateAttr(default=None)
    _file: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _remember_where(self, info: ValidationInfo) -> ReleaseSpec:
        context = info.context or {}
        if (base_dir := context.get("base_dir")) is not None:
            self._base_dir = Path(os.path.normpath(Path(base_dir).absolute()))
        if (file := context.get("spec_file")) is not None:
            self._file = Path(os.path.normpath(Path(file).absolute()))
        return self

    @property
    def base_dir(self) -> Path | None:
        """The folder release.yaml is in (None for a spec built in code): the runner keys
        the inputs inside it by their path relative to it, so the folder can move."""
        return self._base_dir

    @property
    def file(self) -> Path | None:
        """release.yaml itself (None for a spec built in code). Never a stage's input,
        even when it lies in one (the wizard may save it inside the adapter's folder)."""
        return self._file

    @property
    def tag(self) -> str:
        return f"v{self.version}"

    def to_plain(self, base_dir: Path | None = None, *, exclude_defaults: bool = True) -> dict:
        """The spec as plain YAML-ready data: paths below ``base_dir`` (the folder the file
        will be saved in) relative to it, others absolute, so a saved file reads like one
        a person wrote."""

        def plain(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, list):
                return [plain(item) for item in value]
            if isinstance(value, Path):
                return relative_if_inside(value, base_dir)
            return value

        return plain(self.model_dump(exclude_defaults=exclude_defaults))

    def to_yaml(self, base_dir: Path | None = None) -> str:
        """The spec as a fresh YAML text, defaults left out (see ``to_plain``)."""
        return yaml.safe_dump(self.to_plain(base_dir), sort_keys=False, allow_unicode=True)


def _line_of(error: dict, locator: YamlLocator) -> int | None:
    return locator.line_of(tuple(error["loc"]), key=error["type"] == "extra_forbidden")


def _format_problem(error: dict, locator: YamlLocator, path: Path) -> str:
    loc = tuple(error["loc"])
    field = ".".join(str(part) for part in loc) or "(top level)"
    line = _line_of(error, locator)
    where = f"{path}:{line}" if line else str(path)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key" + locator.suggestion(loc)
    elif error["type"] == "missing" and loc == ("adapter",):
        message = "required: give adapter.path or adapter.repo_id, or merge.recipe (the models)"
    elif error["type"] == "string_type" and isinstance(error.get("input"), int | float):
        message += f"; YAML reads {error['input']!r} as a number: quote it"
    return f"{where}: {field}: {message}"


MAX_SPEC_BYTES = 2**20
"""A release.yaml is a few hundred bytes; a larger file is not one."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; in a spec that silently drops a setting."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_spec(text: str, path: Path) -> ReleaseSpec:
    """Validate release.yaml text; paths resolve against ``path``'s folder."""
    try:
        data = yamlio.load(text, _UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark:
            problem += f" ({context} started on line {context_mark.line + 1})"
        raise SpecError(
            f"{path}{line}: not valid YAML: {problem}", hint="fix the YAML syntax"
        ) from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of keys (name, version, base, adapter…)")
    _refuse_secrets(data, text, path)
    data = _with_recipe_file(data, text, path)
    try:
        context = {"base_dir": path.parent.absolute(), "spec_file": path.absolute()}
        return ReleaseSpec.model_validate(data, context=context)
    except ValidationError as exc:
        locator = YamlLocator(text, ReleaseSpec)
        errors = [{**e, "loc": recipe_yaml_loc(tuple(e["loc"]), data)} for e in exc.errors()]
        located = [(_line_of(e, locator), _format_problem(e, locator, path)) for e in errors]
        problems = [problem for _, problem in sorted(located, key=lambda item: item[0] or 0)]
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise SpecError(f"{path}: {count}", problems=problems) from None


def _with_recipe_file(data: dict, text: str, path: Path) -> dict:
    """``merge.recipe: FILE``: the file read and checked here, so a problem in it names
    the recipe file's line (release.yaml's own lines name release.yaml's)."""
    merge = data.get("merge")
    if not isinstance(merge, dict) or not isinstance(merge.get("recipe"), str):
        return data
    file = Path(merge["recipe"]).expanduser()
    file = file if file.is_absolute() else path.parent / file
    try:
        recipe_text = yamlio.read_bounded(file, MAX_SPEC_BYTES)
        recipe = yamlio.load(recipe_text, _UniqueKeyLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        line = YamlLocator(text, ReleaseSpec).line_of(("merge", "recipe"))
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else str(file)
        problem = getattr(exc, "strerror", None) or getattr(exc, "problem", None) or str(exc)
        raise SpecError(
            f"{path}:{line}: merge.recipe: cannot read the recipe file {where}: {problem}",
            hint="fix the recipe file, or give the recipe inline under merge.recipe",
        ) from None
    _refuse_secrets(recipe if isinstance(recipe, dict) else {"steps": recipe}, recipe_text, file)
    try:
        MergeRecipe.model_validate(recipe, context={"base_dir": path.parent.absolute()})
    except ValidationError as exc:
        locator = YamlLocator(recipe_text, MergeRecipe)
        nested = {"merge": {"recipe": recipe}}
        errors = [
            {**e, "loc": recipe_yaml_loc(("merge", "recipe", *e["loc"]), nested)[2:]}
            for e in exc.errors()
        ]
        located = [(_line_of(e, locator), _format_problem(e, locator, file)) for e in errors]
        problems = [problem for _, problem in sorted(located, key=lambda item: item[0] or 0)]
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise SpecError(
            f"{file}: {count} (the recipe file release.yaml names)", problems=problems
        ) from None
    return {**data, "merge": {**merge, "recipe": recipe}}


def recipe_where(path: Path, loc: tuple) -> tuple[str, str]:
    """Where the recipe's ``loc`` (a path in ``MergeRecipe``: ``("steps", 0, "models", 1,
    "model")``) is written: ``file:line`` in release.yaml ``path``, or in the recipe file
    it names, and the key as written there (``merge.recipe.models[1].model``)."""
    text = yamlio.read_bounded(path, MAX_SPEC_BYTES)
    data = yamlio.load(text, _UniqueKeyLoader)
    merge = data.get("merge") if isinstance(data, dict) else None
    named = merge.get("recipe") if isinstance(merge, dict) else None
    full = ("merge", "recipe", *loc)
    if isinstance(named, str):
        file = Path(named).expanduser()
        file = file if file.is_absolute() else path.parent / file
        recipe_text = yamlio.read_bounded(file, MAX_SPEC_BYTES)
        written = recipe_yaml_loc(full, {"merge": {"recipe": yamlio.load(recipe_text)}})
        line = YamlLocator(recipe_text, MergeRecipe).line_of(written[2:])
    else:
        file, written = path, recipe_yaml_loc(full, data)
        line = YamlLocator(text, ReleaseSpec).line_of(written)
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in written)
    return (f"{file}:{line}" if line else str(file)), key[1:]


def _secret_values(value: Any, loc: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_values(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_values(item, (*loc, index))
    elif isinstance(value, str) and (what := secret_in(value)):
        yield loc, what


def _refuse_secrets(data: dict, text: str, path: Path) -> None:
    """A token in release.yaml would reach the card, the manifest and the Hub: refused
    before anything is written (the token is read from HF_TOKEN or `hf auth login`)."""
    found = list(_secret_values(data, ()))
    if found:
        locator = YamlLocator(text, ReleaseSpec)
        problems = [
            f"{path}:{locator.line_of(loc) or 1}: {'.'.join(map(str, loc))}: holds {what}"
            for loc, what in found
        ]
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise SpecError(
            f"{path}: {count}",
            problems=problems,
            hint="never put a token in release.yaml: model-release reads it from HF_TOKEN",
        )


def load_spec(path: str | Path) -> ReleaseSpec:
    path = Path(path)
    try:
        text = yamlio.read_bounded(path, MAX_SPEC_BYTES)
    except FileNotFoundError:
        raise MissingInputError(
            f"{path}: no such file", hint="create one with `model-release init ADAPTER_DIR`"
        ) from None
    except IsADirectoryError:
        raise SpecError(f"{path}: a folder, not a release.yaml") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_spec(text, path)
