"""What the evaluate stage records in the manifest: each check's numbers, its limits and
its verdict, so readers (the card, the wizard, the job summary) show the verdict the
stage reached instead of working it out again."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_serializer

from cards.records import DEFAULT_FILTER, Scores
from release.core.facts import Facts, StageFacts
from release.core.manifest import Manifest
from release.evaluate.launch import Launch
from release.reference.facts import ReferenceFacts


class EquivalenceFacts(Facts):
    """Merged model vs base + adapter on the probe prompts."""

    prompts: int
    positions: int
    max_abs_diff: float
    mean_abs_diff: float
    adapter_effect: float
    top1_agreement: float
    relative_error: float
    min_top1_agreement: float
    max_relative_error: float
    passed: bool | None = None


class PerplexityFacts(Facts):
    """Held-out text: the base and the merged model (which the equivalence check has
    shown to be base + adapter, so base + adapter's own pass would prove nothing more)."""

    text: str
    tokens: int
    base: float
    merged: float
    ratio: float
    max_ratio: float
    passed: bool | None = None
    limited: str | None = None
    """Why fewer of its tokens were read than a GPU reads (``HeldoutText.limited``)."""


class ComparisonFacts(Facts):
    """One score against the last release's: ``drop`` is relative, positive is worse."""

    task: str
    metric: str
    filter: str = DEFAULT_FILTER
    n_shot: int | None = None
    previous: float
    current: float
    drop: float


class InputFigures(Facts):
    """One model of a merge recipe, measured beside the merged model."""

    name: str
    """As the card names it: a Hub id at its commit, or a local folder's name."""
    kind: str
    """base, checkpoint (a full fine-tune) or lora (an adapter applied to the base)."""
    perplexity: float
    results: Scores = Field(default_factory=list, exclude_if=lambda results: not results)
    """Its eval.tasks scores, as lm-eval produced them on it (the base's: compare_base's)."""


class InputGateFacts(Facts):
    """eval.gate: the merged model no worse than one of its inputs."""

    input: str
    """As the recipe names it (eval.gate.no_worse_than)."""
    name: str
    """As the card names it."""
    input_perplexity: float
    merged_perplexity: float
    tolerance: float
    limit: float
    passed: bool
    compared: list[ComparisonFacts] = Field(
        default_factory=list, exclude_if=lambda compared: not compared
    )
    """eval.tasks' scores of the merged model against the input's (``drop`` at most
    ``tolerance`` each)."""


class MergeInputsFacts(Facts):
    """A merge recipe's release: the merged model beside each of its inputs on the
    held-out text (``release.evaluate.recipe_checks``). The equivalence check (merged ==
    base + adapter) does not apply: a merge of several models is none of them."""

    models: list[InputFigures] = Field(default_factory=list)
    gate: InputGateFacts | None = None


class BaseFiguresFacts(Facts):
    """The base's perplexity and probe logits (``release.evaluate.base_figures``): read
    from the cache an earlier release of the same base filled, or computed in this run."""

    key: str
    """The cache key's sha256: the base's fingerprint, the texts' token ids, the dtype…"""
    cached: bool = Field(default=False, exclude=True)
    """Read from the cache in this run: how the run went, not what the release is, so it is
    not written to the manifest (a tag's rerun on a fresh runner writes the same one); the
    log says it."""


class SmokeFacts(Facts):
    """One chat smoke test: a greedy answer through the chat template."""

    prompt: str
    output: str
    stop: str
    new_tokens: int
    repeated_ngram_ratio: float
    leaked: list[str] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    passed: bool


class GateFacts(Facts):
    """The regression gate's verdict against the last release."""

    passed: bool
    compared: list[ComparisonFacts] = Field(default_factory=list)
    failures: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    flagged: list[str] = Field(default_factory=list)
    average_previous: float | None = None
    average_current: float | None = None


class PreviousRelease(Facts):
    """A manifest the gate compared against: where it lay, relative to the folder of the
    manifest that records it (so a history can follow the chain), and its sha256."""

    path: str
    sha256: str
    name: str | None = None
    version: str | None = None


class HarnessFacts(Facts):
    """The lm-eval run of eval.tasks: what ran, and the harness's own files it left."""

    tasks: list[str]
    backend: str
    dtype: str
    launch: Launch | None = None
    """How the harness ran on the GPUs there were, and why (``release.evaluate.launch``)."""
    files: list[str] = Field(default_factory=list)
    """results_*.json and samples files, relative to the evaluate stage's folder."""
    base_files: list[str] = Field(default_factory=list)
    """The same, of the run on the base (eval.tasks.compare_base)."""
    input_files: list[str] = Field(default_factory=list, exclude_if=lambda files: not files)
    """The same, of the runs on a merge recipe's inputs."""
    results: Scores = Field(default_factory=list)
    """The scores this run produced on the merged model (``release.evaluate.scores``
    merges them with the stored results)."""


class EvaluateFacts(StageFacts):
    stage: ClassVar[str] = "evaluate"

    results: Scores = Field(default_factory=list)
    """This release's scores as its gate judged them: stored and produced
    (``release.evaluate.scores``)."""
    gate: GateFacts | None = None
    previous: list[PreviousRelease] = Field(default_factory=list)
    """The previous releases' manifests among ``eval.previous``: the release history's chain."""
    device: str | None = None
    """Where and in which dtype the models ran ("cpu (float32)", "cuda (2 GPUs, …)")."""
    harness: HarnessFacts | None = None
    base_results: Scores = Field(default_factory=list)
    """The base model's scores on the same eval.tasks (compare_base), as ``results``:
    shown beside this release's, never in its model-index or its gate."""
    equivalence: EquivalenceFacts | None = None
    perplexity: PerplexityFacts | None = None
    base_figures: BaseFiguresFacts | None = None
    smoke: list[SmokeFacts] = Field(default_factory=list)
    reference: ReferenceFacts | None = None
    """The merged model's reference, kept for the GGUF stage's checks (``release.reference``)."""
    merge_inputs: MergeInputsFacts | None = None
    """A merge recipe's inputs measured beside the merged model; absent (not null) from the
    manifest of a release of one adapter, whose bytes stay as they were."""
    estimated_output_bytes: int | None = None
    estimated_peak_memory_bytes: int | None = None

    @model_serializer(mode="wrap")
    def _leave_out_no_inputs(self, handler):
        dumped = handler(self)
        if self.merge_inputs is None:
            dumped.pop("merge_inputs", None)
        return dumped


def evaluated(manifest: Manifest) -> EvaluateFacts | None:
    """What the evaluate stage recorded, or what it measured before the gate said no."""
    refusal = manifest.refused.get(EvaluateFacts.stage)
    return EvaluateFacts.model_validate(refusal.facts) if refusal else EvaluateFacts.of(manifest)
