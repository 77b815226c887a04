"""What a card is told was measured: the typed input of every number on it.

model-release fills these from its manifest's fact records
(``release.report.card_context``); ``card build --facts`` reads the same record from a
facts.json. Every field is optional (a card leaves out a row whose fact is absent) and
unknown keys are errors, so a misspelt fact is caught rather than silently not shown.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Facts(BaseModel):
    """Numbers keep their JSON type (``int | float``): a card writes 16, not 16.0."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class LoraFacts(_Facts):
    r: int | None = None
    alpha: int | float | None = None
    dropout: int | float | None = None
    target_modules: list[str] | str | None = None
    """A list of module names, or PEFT's regex form as one string."""
    use_rslora: bool | None = None
    use_dora: bool | None = None
    init_lora_weights: bool | str | None = None
    qlora: bool | None = None
    """Trained on a 4-bit base."""


class TrainingFacts(_Facts):
    epochs: int | float | None = None
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    seed: int | None = None


class EquivalenceFacts(_Facts):
    """Merged model vs base + adapter on the probe prompts."""

    positions: int
    top1_agreement: float
    relative_error: float


class PerplexityFacts(_Facts):
    """Held-out text: the base and the merged model."""

    tokens: int
    base: float
    merged: float


class SmokeFacts(_Facts):
    """One chat smoke test: a greedy answer through the chat template."""

    prompt: str
    output: str
    passed: bool


class MergeInputFigure(_Facts):
    """One model of a merge recipe measured beside the merged model (held-out text)."""

    name: str
    kind: str
    """base, checkpoint (a full fine-tune) or lora (an adapter applied to the base)."""
    perplexity: float
    scores: list[float | None] = Field(default_factory=list)
    """Its eval.tasks scores, one per ``SanityFacts.merge_score_labels`` (None: not run
    on it)."""


class MergeGateFacts(_Facts):
    """The merge held to one of its inputs: perplexity at most the input's + tolerance."""

    name: str
    tolerance: float
    limit: float


class SanityFacts(_Facts):
    """The release's own checks (model-release's evaluate stage), as measured."""

    equivalence: EquivalenceFacts | None = None
    perplexity: PerplexityFacts | None = None
    smoke: list[SmokeFacts] = Field(default_factory=list)
    device: str | None = None
    """Where and in which dtype the models ran."""
    merge_inputs: list[MergeInputFigure] = Field(default_factory=list)
    """A merge recipe's release: each input measured beside the merged model (the
    equivalence check, merged == base + adapter, does not apply to a merge)."""
    merge_gate: MergeGateFacts | None = None
    merge_score_labels: list[str] = Field(default_factory=list)
    """The eval.tasks scores the table sets beside the perplexity: the merged model's, as
    the gate names them."""
    merge_scores: list[float] = Field(default_factory=list)
    """The merged model's, one per label."""


class QuantLossFacts(_Facts):
    """What a GGUF file loses against the unquantized model on held-out text, as
    ``llama-perplexity --kl-divergence`` measures it."""

    kld_mean: float
    """KL divergence (unquantized || file) per token, in nats."""
    kld_p99: float
    same_top1: float
    """Share of tokens where both pick the same most likely next token."""
    ppl_ratio: float
    """The file's perplexity over the unquantized model's."""


class GGUFFileFacts(_Facts):
    """One GGUF file, its numbers as llama.cpp measured them (what GGUF users run)."""

    name: str | None = None
    type: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    top1_agreement: float | None = None
    max_abs_diff: float | None = None
    loss: QuantLossFacts | None = None
    recommended: bool = False
    """The smallest file whose loss is under the release's limit (``max_kld``)."""


class ProjectorFacts(_Facts):
    """The towers' projector file, which llama.cpp loads beside each text GGUF."""

    name: str
    towers: list[str] = Field(default_factory=list)
    bytes: int | None = None
    sha256: str | None = None


class GGUFBuildFacts(_Facts):
    """The llama.cpp that wrote and verified the files, and the writers each file names."""

    llama_cpp: str | None = None
    commit: str | None = None
    writers: list[str] = Field(default_factory=list)
    reference_top_k: int | None = None
    """The unquantized model's most likely tokens per position the files were compared on."""
    loss_text: str | None = None
    """The held-out text the files' loss was measured on."""
    loss_tokens: int | None = None
    loss_chunk: int | None = None
    max_kld: float | None = None


class HistoryCell(_Facts):
    """One score of one version: its value, and its change against the release before
    it (relative, + is better) or why the two were not compared."""

    value: float | None = None
    change: float | None = None
    differs: str | None = None


class HistoryVersion(_Facts):
    version: str
    date: str | None = None
    reason: str | None = None
    """Why this version was not released; None when it was."""
    scores: list[HistoryCell] = Field(default_factory=list)
    """One cell per ``HistoryFacts.columns``."""


class HistoryFacts(_Facts):
    """Each version of the release, oldest first, and where the history stops."""

    columns: list[str] = Field(default_factory=list)
    versions: list[HistoryVersion] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    """Earlier versions whose manifest could not be read."""


class ContaminationMethod(_Facts):
    """One way training texts were compared with test documents."""

    key: str
    label: str
    description: str


class ContaminationTask(_Facts):
    """One task's test documents against the training data."""

    task: str
    documents: int
    contaminated: dict[str, int] = Field(default_factory=dict)
    """Documents found by each method (by ``ContaminationMethod.key``)."""
    any_method: int = 0
    share: float = 0.0
    marked: bool = False
    """Above the release's limit: the card marks the task's scores."""


class ContaminationSkipped(_Facts):
    task: str
    reason: str


class ContaminationFacts(_Facts):
    """The training data against the documents of the tasks the card reports."""

    training: list[str] = Field(default_factory=list)
    segments: int = 0
    methods: list[ContaminationMethod] = Field(default_factory=list)
    tasks: list[ContaminationTask] = Field(default_factory=list)
    skipped: list[ContaminationSkipped] = Field(default_factory=list)
    max_share: float | None = None


class RecipeInput(_Facts):
    """One input of a merge recipe, named publicly (a Hub id at its commit, or a local
    folder's name with the sha256 of its weights)."""

    name: str
    kind: str
    """base, checkpoint (a full fine-tune) or lora (an adapter applied to the base)."""
    repo_id: str | None = None
    revision: str | None = None
    sha256: str | None = None


class RecipeMethod(_Facts):
    name: str
    pretty_name: str
    paper: str


class MergeRecipeFacts(_Facts):
    """The merge recipe a release was made with: its YAML (no local paths), its inputs and
    the methods it used."""

    yaml: str
    inputs: list[RecipeInput] = Field(default_factory=list)
    methods: list[RecipeMethod] = Field(default_factory=list)
    mergekit_compatible: bool = False
    random_seeds: list[int] = Field(default_factory=list)
    mask_files: dict[str, str] = Field(default_factory=dict)
    """A delta mask file's name -> its sha256."""


class MeasuredFacts(_Facts):
    """Everything a card says that was measured, rather than written by its author."""

    architecture: str | None = None
    base_parameters: int | None = None
    trainable_parameters: int | None = None
    dtype: str | None = None
    context_length: int | None = None
    vocab_size: int | None = None
    towers: list[str] | None = None
    """The vision/audio towers the checkpoint keeps (absent: a text model)."""
    adapter_bytes: int | None = None
    merged_bytes: int | None = None
    base_revision: str | None = None
    adapter_revision: str | None = None
    peft_type: str | None = None
    chat_template: bool | None = None
    dequantized_base: str | None = None
    """What intake found of a quantized base it dequantized (``base.dequantize``)."""
    base_model_citation: str | None = None
    dataset_citations: list[str] = Field(default_factory=list)
    lora: LoraFacts | None = None
    training: TrainingFacts | None = None
    sanity: SanityFacts | None = None
    gguf_files: list[GGUFFileFacts] = Field(default_factory=list)
    mmproj: ProjectorFacts | None = None
    gguf_build: GGUFBuildFacts | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    """The tools that made the model, and their versions."""
    history: HistoryFacts | None = None
    contamination: ContaminationFacts | None = None
    merge_recipe: MergeRecipeFacts | None = None
