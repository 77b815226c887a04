"""What both merges (one adapter: ``stream``; a recipe: ``recipe_stream``) share in
writing the merged model's folder: the progress and result records, each tensor's output
dtype and whether it can go a block of rows at a time, config.json and the side files
(generation config, processor configs, tokenizer, chat template, remote code)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.checkpoint.base import PROCESSOR_FILES, TOKENIZER_FILES
from release.checkpoint.safetensors import CODES, FLOAT_DTYPES, TensorInfo
from release.merge import initialization, lora

COPIED_FILES = ("generation_config.json", *PROCESSOR_FILES, *TOKENIZER_FILES)


@dataclass
class MergeResult:
    parameters: int
    dtype: str
    bytes_written: int
    shards: int
    tensors: int
    tensors_merged: int
    peak_rss: int
    tokenizer_from: str
    sha256: dict[str, str]
    """Each shard's sha256, taken while it was written."""


@dataclass(frozen=True)
class Step:
    """Progress: ``done`` of ``total`` bytes of the base processed, after ``tensor``."""

    tensor: str
    done: int
    total: int


def output_dtype(info: TensorInfo, dtype: str) -> str:
    """The safetensors dtype a base tensor is written in: floats follow ``dtype`` ("auto"
    keeps each tensor's own), anything else is copied as it is."""
    if dtype == "auto" or info.dtype not in FLOAT_DTYPES:
        return info.dtype
    return CODES[dtype]


def moves_base(edit: lora.ModuleEdit | None, settings: lora.LoraSettings) -> bool:
    """Whether PEFT's load subtracts the initialization from this base weight (PiSSA,
    OLoRA on a Linear layer: ``release.merge.initialization``)."""
    moves = initialization.moves_base(settings.init_lora_weights)
    return moves and edit is not None and edit.kind == "linear"


def by_rows(edit: lora.ModuleEdit | None, info: TensorInfo, settings: lora.LoraSettings) -> bool:
    """Whether the tensor can be merged a block of rows at a time (``blocks``): a cast,
    or a plain LoRA on a matrix. A replacement (modules_to_save), DoRA, whose norms
    span the whole matrix, and an initialization that moves the base take the whole
    tensor in float32."""
    if edit is None:
        return True
    plain = edit.kind is not None and not edit.replacement and not edit.magnitude
    return plain and len(info.shape) == 2 and not moves_base(edit, settings)


def write_config(
    base_dir: Path, out_dir: Path, dtype: str, vocab_size: int | None, *, untied: bool
) -> None:
    """config.json as the base's, with the dtype actually written and no quantization;
    the vocabulary an adapter grew, and its head untied from the embedding if it was."""
    config: dict[str, Any] = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    config.pop("quantization_config", None)
    text = config["text_config"] if isinstance(config.get("text_config"), dict) else config
    if vocab_size is not None:
        text["vocab_size"] = vocab_size
    if untied:
        for section in {id(config): config, id(text): text}.values():
            section["tie_word_embeddings"] = False
    if dtype != "mixed":
        for key in ("torch_dtype", "dtype"):
            if key in config or key == "dtype":
                config[key] = dtype
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def copy_side_files(base_dir: Path, adapter_dir: Path, out_dir: Path) -> str:
    """Copy generation config, processor configs, tokenizer, chat template and remote
    code; never the base's README.

    A tokenizer saved with the adapter is the one it was trained with (new tokens, a
    chat template), so it wins over the base's, as a set, never mixed file by file."""
    tokenizer_from = "adapter" if (adapter_dir / "tokenizer_config.json").is_file() else "base"
    for name in COPIED_FILES:
        source = base_dir / name
        if name in TOKENIZER_FILES and tokenizer_from == "adapter":
            source = adapter_dir / name
        if source.is_file():
            shutil.copyfile(source, out_dir / name)
    if "auto_map" in json.loads((out_dir / "config.json").read_text(encoding="utf-8")):
        for source in base_dir.glob("*.py"):  # remote code the config points at
            shutil.copyfile(source, out_dir / source.name)
    return tokenizer_from
