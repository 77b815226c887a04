"""The base model of a release: where its files are and what it declares.

``base.path`` is used as it is. A base given only by ``base.repo_id`` is downloaded with
huggingface_hub's ``snapshot_download`` at ``base.revision`` (weights in safetensors,
configs, tokenizer, chat template and the model card only; a pickle ``*.bin`` is never
fetched) into the Hub cache, so a second stage or a rerun finds it there. The card
(README.md) is read for the BibTeX the base asks to be cited with.
"""

from __future__ import annotations

from pathlib import Path

from cards.card_bibtex import card_citations
from release.core.errors import InputError, MissingInputError
from release.spec.schema import BaseModelSpec

TOKENIZER_FILES = (  # what a merged model folder needs to be used as is
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)

PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
"""A multimodal checkpoint's image and audio preprocessing (Gemma 4's towers): what
AutoProcessor and llama.cpp's projector conversion read; the merge keeps the base's."""

ALLOW_PATTERNS = [
    "*.safetensors",
    "*.safetensors.index.json",
    "*.json",
    "*.jinja",
    "tokenizer*",
    "*.model",
    "*.tiktoken",
    "*.txt",
    "*.py",
    "README.md",
]


def base_label(base: BaseModelSpec) -> str:
    """How a base is named in messages and in the manifest: repo_id[@revision], else path."""
    if base.repo_id:
        return f"{base.repo_id}@{base.revision}" if base.revision else base.repo_id
    return str(base.path)


def resolve_base_dir(base: BaseModelSpec) -> Path:
    """The local folder of the base's files, downloading it when only repo_id is given."""
    if base.path is not None:
        if not (base.path / "config.json").is_file():
            raise MissingInputError(
                f"{base.path}: no config.json; base.path must be a Hugging Face model folder",
                hint="point base.path at a folder written by save_pretrained",
            )
        return base.path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    assert base.repo_id is not None  # the spec requires repo_id or path
    try:
        folder = snapshot_download(
            base.repo_id, revision=base.revision, allow_patterns=ALLOW_PATTERNS
        )
    except HfHubHTTPError as exc:
        raise InputError(
            f"base.repo_id: cannot download {base_label(base)} ({str(exc).splitlines()[0]})",
            hint="check the repo id and revision, and log in (hf auth login) for gated models",
        ) from None
    return Path(folder)


def base_citations(base_dir: Path) -> list[str]:
    """The BibTeX entries the base's own card (README.md) asks to be cited with; none
    when the folder has no card or the card cannot be read."""
    card = base_dir / "README.md"
    try:
        return card_citations(card.read_text(encoding="utf-8")) if card.is_file() else []
    except (OSError, UnicodeDecodeError):
        return []  # a base whose card is unreadable is still a base; it is just not cited
