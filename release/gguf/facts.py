"""What the GGUF stage records in the manifest: each file, as llama.cpp and transformers
read it back, with the limit it had to meet and the verdict."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from cards.records import Scores
from release.core.facts import Facts, StageFacts
from release.reference.facts import ReferenceFacts


class QuantQualityFacts(Facts):
    """What the file loses against the merged model on the held-out text, as
    llama-perplexity --kl-divergence measures it (``release.gguf.quality``)."""

    text: str
    """The held-out text."""
    chunk: int
    """Tokens per chunk (llama-perplexity's ``n_ctx``); the second half of each is scored."""
    tokens: int
    """Scored tokens."""
    limited: str | None = None
    """Why fewer of the text's tokens were read than a GPU reads (``HeldoutText.limited``)."""
    kld_mean: float
    """KL divergence (merged || file) per token, in nats: mean, median, 99th percentile
    and largest."""
    kld_median: float
    kld_p99: float
    kld_max: float
    same_top1: float
    ppl: float
    ppl_reference: float
    """The merged model's perplexity on the same tokens."""
    ppl_ratio: float
    max_kld: float
    """``gguf.max_kld``: the mean's limit."""


class TaskDropFacts(Facts):
    """One of a file's scores against the merged model's on the same task, as the gate on
    quants compared them (``release.evaluate.gate.quant_drops``)."""

    task: str
    metric: str
    filter: str
    merged: float
    value: float
    drop: float
    """Relative, positive is worse (a perplexity's rise is a drop)."""


class QuantScoresFacts(Facts):
    """The release's lm-eval tasks on one GGUF file (eval.tasks.gguf), run by llama.cpp in
    process (``release.evaluate.llama_cpp_lm``): its scores beside the merged model's."""

    type: str
    file: str
    results: Scores = Field(default_factory=list)
    """Each score's ``source`` is the file's name."""
    compared: list[TaskDropFacts] = Field(default_factory=list)
    """Each score of ``results`` the merged model has too, against it."""
    max_task_drop: float
    """``gguf.max_task_drop``: the largest ``drop`` a file may have."""


class GGUFFileFacts(Facts):
    name: str
    type: str
    exporter: str | None = None
    bytes: int
    sha256: str
    top1_agreement: dict[str, float] = Field(default_factory=dict)
    """Per loader (``llama_cpp``, ``transformers``): on every probe position."""
    confident_top1_agreement: dict[str, float] = Field(default_factory=dict)
    """Per loader: where the merged model is confident; what ``min_top1_agreement`` bounds."""
    mean_kl: dict[str, float] = Field(default_factory=dict)
    max_abs_diff: dict[str, float] = Field(default_factory=dict)
    min_top1_agreement: float | None = None
    tokenizer_agreement: bool | None = None
    smoke_output: str | None = None
    stop_ids: list[int] | None = None
    """The end-of-generation ids llama.cpp reads from the file."""
    mmproj_loaded: bool | None = None
    """Whether llama.cpp's multimodal loader opened the projector beside this file."""
    quality: QuantQualityFacts | None = None
    """On the held-out text, where llama.cpp checked the file."""
    passed: bool | None = None


class LlamaCppFacts(Facts):
    """Which llama.cpp wrote (its converter) or checked (its runtime) the files. A
    converter from a user's checkout (``gguf.llama_cpp_dir``) has no package or version:
    its label names the folder, its commit is the checkout's where git says it."""

    package: str | None = None
    llama_cpp: str | None = None
    commit: str | None = None
    sdist_sha256: str | None = None
    label: str | None = None


class ProjectorFacts(Facts):
    """The vision/audio towers' projector file (``mmproj-*.gguf``)."""

    name: str
    towers: list[str] = Field(default_factory=list)
    tensors: int | None = None
    bytes: int
    sha256: str
    loaded_by_llama_cpp: bool | None = None


class GGUFFacts(StageFacts):
    stage: ClassVar[str] = "gguf"

    architecture: str | None = None
    exporter: str | None = None
    llama_cpp: LlamaCppFacts | None = None
    files: list[GGUFFileFacts] = Field(default_factory=list)
    projector: ProjectorFacts | None = None
    probe_prompts: int | None = None
    probe_positions: int | None = None
    smoke_prompt: str | None = None
    smoke_reference_output: str | None = None
    reference_source: str | None = None
    """Whose run of the merged model the files were compared with: "evaluate" (the
    evaluate stage's, read from its folder) or "gguf" (computed by this stage)."""
    reference: ReferenceFacts | None = None
    benchmarks: list[QuantScoresFacts] = Field(default_factory=list, exclude_if=lambda v: not v)
    """eval.tasks on the files eval.tasks.gguf names, in its order; absent (not empty) from
    the manifest of a release that names none, whose bytes stay as they were."""
    tools: dict[str, str] = Field(default_factory=dict)
    estimated_output_bytes: int | None = None
    estimated_peak_memory_bytes: int | None = None
