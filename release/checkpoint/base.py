"""The base model of a release: where its files are and what it declares.

``base.path`` is used as it is. A base given only by ``base.repo_id`` is downloaded with
huggingface_hub at ``base.revision`` (``release.checkpoint.snapshot``: weights in
safetensors, configs, tokenizer, chat template and the model card only; a pickle
``*.bin`` is never fetched) into the Hub cache, so a second stage or a rerun finds it
there. Intake records the commit it resolved to; the stages after it download that
commit, not the branch. The card (README.md) is read for the BibTeX the base asks to be
cited with.
"""

from __future__ import annotations

from pathlib import Path

from cards.card_bibtex import card_citations
from release.checkpoint.snapshot import Snapshot, download
from release.core.errors import MissingInputError
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


def base_snapshot(base: BaseModelSpec, commit: str | None = None) -> Snapshot | None:
    """The base as downloaded from the Hub (None when ``base.path`` is given), at
    ``commit`` once a run has pinned it, else at ``base.revision``."""
    if base.path is not None:
        return None
    assert base.repo_id is not None  # the spec requires repo_id or path
    return download(base.repo_id, commit or base.revision, ALLOW_PATTERNS, field="base")


DEQUANTIZED_DIR = "base-dequantized"
"""Where intake writes a 4-bit base dequantized (``base.dequantize``), in its folder."""


def resolve_base_dir(
    base: BaseModelSpec, commit: str | None = None, intake_dir: Path | None = None
) -> Path:
    """The local folder of the base's files, downloading it when only repo_id is given
    (at the pinned ``commit`` when there is one). With ``intake_dir``: the base the
    stages after intake read, the dequantized copy when intake wrote one."""
    if intake_dir is not None and (intake_dir / DEQUANTIZED_DIR / "config.json").is_file():
        return intake_dir / DEQUANTIZED_DIR
    if base.path is not None:
        if not (base.path / "config.json").is_file():
            raise MissingInputError(
                f"{base.path}: no config.json; base.path must be a Hugging Face model folder",
                hint="point base.path at a folder written by save_pretrained",
            )
        return base.path
    snapshot = base_snapshot(base, commit)
    assert snapshot is not None
    return snapshot.folder


def base_citations(base_dir: Path) -> list[str]:
    """The BibTeX entries the base's own card (README.md) asks to be cited with; none
    when the folder has no card or the card cannot be read."""
    card = base_dir / "README.md"
    try:
        return card_citations(card.read_text(encoding="utf-8")) if card.is_file() else []
    except (OSError, UnicodeDecodeError):
        return []  # a base whose card is unreadable is still a base; it is just not cited
