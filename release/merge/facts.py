"""What the adapter and merge stages record in the manifest."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from cards.measured import MergeRecipeFacts
from release.core.facts import StageFacts


class AdapterFacts(StageFacts):
    """Adapter intake: the adapter's settings and the base it was proven against."""

    stage: ClassVar[str] = "adapter"

    peft_type: str | None = None
    r: int | None = None
    lora_alpha: float | None = None
    lora_dropout: float | None = None
    use_rslora: bool | None = None
    use_dora: bool | None = None
    init_lora_weights: str | None = None
    """PEFT's initialization, where not its default (``pissa``, ``olora``, ``eva``...)."""
    target_modules: list[str] | str | None = None
    modules_to_save: list[str] | None = None
    rank_pattern: dict[str, Any] = Field(default_factory=dict)
    alpha_pattern: dict[str, Any] = Field(default_factory=dict)
    edited_parameters: int | None = None
    trainable_parameters: int | None = None
    adapter_bytes: int | None = None
    adapter_format: str | None = None
    adapter_dtypes: list[str] = Field(default_factory=list)
    declared_base: str | None = None
    base_id: str | None = None
    base_repo_id: str | None = None
    base_revision: str | None = None
    base_parameters: int | None = None
    base_dtype: str | None = None
    base_tensors: int | None = None
    base_fingerprint: str | None = None
    dequantized_base: str | None = None
    """What intake found in a quantized base it dequantized (``base.dequantize``)."""
    base_model_class: str | None = None
    base_citations: list[str] = Field(default_factory=list)
    base_commit: str | None = None
    """The commit a Hub base resolved to: the stages after intake download this one."""
    adapter_repo_id: str | None = None
    adapter_revision: str | None = None
    adapter_commit: str | None = None
    """The commit a Hub adapter resolved to (None for a local folder)."""
    """BibTeX entries the base model's own card asks to be cited with."""


class MergeFacts(StageFacts):
    """The merged model as written: its size, dtype, and what a card says of the model."""

    stage: ClassVar[str] = "merge"

    merged_parameters: int | None = None
    dtype: str | None = None
    bytes_written: int | None = None
    shards: int | None = None
    tensors: int | None = None
    tensors_merged: int | None = None
    tokenizer_from: str | None = None
    architecture: str | None = None
    """``config.json``'s model class (``LlamaForCausalLM``)."""
    context_length: int | None = None
    """The text model's ``max_position_embeddings``."""
    vocab_size: int | None = None
    towers: list[str] = Field(default_factory=list)
    """The vision/audio towers the merged checkpoint keeps (none: a text model)."""
    chat_template: bool | None = None
    """Whether the merged folder's tokenizer carries a chat template."""
    estimated_output_bytes: int | None = None
    estimated_peak_memory_bytes: int | None = None
    recipe: MergeRecipeFacts | None = None
    """A merge recipe's YAML with its inputs named publicly (``merge.recipe``)."""
