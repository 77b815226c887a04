"""The base a release names for an adapter: a pre-quantized repo's name gives way to the
unquantized repo it was made from (a LoRA merges onto float weights). One rule, read by
`init` and the wizard (``starter``) and by intake (``release.merge``)."""

from __future__ import annotations

PREQUANTIZED_SUFFIXES = ("-unsloth-bnb-4bit", "-bnb-4bit", "-bnb-8bit")
"""How the Hub names a bitsandbytes copy of a model (unsloth's ``unsloth/llama-3-8b-bnb-4bit``,
its dynamic ``…-unsloth-bnb-4bit``): the unquantized repo is the name without it."""


def unquantized_repo(repo_id: str) -> str | None:
    """The unquantized repo a pre-quantized ``-bnb-4bit`` repo is named after
    (``unsloth/llama-3-8b-bnb-4bit`` -> ``unsloth/llama-3-8b``), None for other names.
    An adapter trained with unsloth names the 4-bit repo it was trained on; its merge
    belongs on these weights."""
    lowered = repo_id.lower()
    for suffix in PREQUANTIZED_SUFFIXES:
        if lowered.endswith(suffix) and len(repo_id) > len(suffix):
            return repo_id[: -len(suffix)]
    return None
