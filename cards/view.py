"""What a card template sees: one typed record, the same for our templates and a release's.

``cards.render`` builds a ``TemplateView`` from the ``CardContext`` and hands its fields
to jinja2 as the template's variables (``{{ name }}``, ``{{ facts.merged_bytes | size }}``).
docs/card-context.md is generated from this record and ``cards.measured`` (``python -m
cards.context_docs``); a test fails when it drifts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cards.measured import GGUFBuildFacts, MeasuredFacts, ProjectorFacts, SmokeFacts
from cards.usage import GGUFUsage, Usage

Row = list[str]


class TemplateView(BaseModel):
    """The variables of a card template. Tables come reduced to the rows present, each
    cell already formatted; ``facts`` is the raw record behind them."""

    model_config = ConfigDict(
        frozen=True, arbitrary_types_allowed=True, use_attribute_docstrings=True
    )

    name: str
    """The model's name: card.model_name, else the repo id's last part."""
    repo_id: str
    """The repo the card is for (the GGUF card: the model that was quantized)."""
    kind: str
    """What the repo holds: adapter, finetune, merge or quantized."""
    gguf_repo_id: str | None
    """The GGUF repo, when the release has one."""
    base_models: list[str]
    datasets: list[str]
    license: str | None
    license_name: str | None
    license_link: str | None
    summary: str
    intended_uses: str
    limitations: str
    training_data: str
    details: list[Row]
    """Model details as [label, value] rows (architecture, parameters, sizes, revisions)."""
    lora: list[Row]
    """The LoRA settings as [label, value] rows."""
    training: list[Row]
    """The training settings as [label, value] rows."""
    sanity: list[Row]
    """model-release's own checks (equivalence, perplexity, smoke) as [label, value] rows."""
    examples: list[SmokeFacts]
    """The chat smoke test's prompts and answers."""
    versions: list[tuple[str, str]]
    """(tool, version) pairs of the software that made the model."""
    facts: MeasuredFacts
    """Every measured fact, raw (its fields below)."""
    evals: dict[str, Any]
    """The evaluation table: ``header``, ``cells`` (rows), ``mismatches`` (n-shot notes),
    ``harnesses`` (the harnesses and versions that measured it), ``quants`` (the GGUF
    types whose files ran the same tasks: a column each, eval.tasks.gguf)."""
    gguf_files: dict[str, Any]
    """The quant table: ``header``, ``rows``, ``files`` (facts.gguf_files), ``verified``
    (whether llama.cpp's agreement was measured)."""
    mmproj: ProjectorFacts | None
    gguf_build: GGUFBuildFacts | None
    dequantized_base: str | None
    usage: Usage
    """What the transformers snippet loads the model with."""
    gguf_usage: GGUFUsage | None
    """The GGUF file and quant the llama.cpp snippets name."""
    history: dict[str, Any]
    """The release history table: ``header``, ``rows``, ``notes``."""
    citations: list[str]
    """BibTeX entries to cite, deduplicated."""

    def variables(self) -> dict[str, Any]:
        """The fields as jinja2's variables (the records themselves, not dumped)."""
        return {name: getattr(self, name) for name in type(self).model_fields}
