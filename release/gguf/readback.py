"""Read a written GGUF back with gguf-py's reader and check it is what we meant to write:
every expected tensor present with the right shape (and type, where we chose it), and
the header keys llama.cpp needs to build the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf


class ReadBackMismatch(ValueError):
    """The file on disk is not the file we planned."""


@dataclass(frozen=True)
class ReadBack:
    tensors: dict[str, tuple[tuple[int, ...], str]]
    """name -> (numpy-order shape, GGML type name)."""
    keys: set[str]
    architecture: str


def read_back(path: Path) -> ReadBack:
    reader = gguf.GGUFReader(path)
    tensors = {
        t.name: (tuple(int(n) for n in reversed(t.shape)), t.tensor_type.name)
        for t in reader.tensors
    }
    field = reader.get_field("general.architecture")
    architecture = field.contents() if field is not None else ""
    return ReadBack(tensors, set(reader.fields), architecture)


def required_keys(arch: str, *, chat_template: bool) -> list[str]:
    keys = [
        "general.architecture",
        "general.name",
        "general.file_type",
        f"{arch}.block_count",
        f"{arch}.context_length",
        f"{arch}.embedding_length",
        f"{arch}.feed_forward_length",
        f"{arch}.attention.head_count",
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.eos_token_id",
    ]
    return [*keys, "tokenizer.chat_template"] if chat_template else keys


def check_read_back(
    found: ReadBack,
    expected: dict[str, tuple[tuple[int, ...], str | None]],
    keys: list[str],
    where: Path,
) -> None:
    """Raise ReadBackMismatch naming the first few differences. A type of None in
    ``expected`` is not checked (llama.cpp's quantizer chooses it)."""
    problems = []
    for name, (shape, qtype) in expected.items():
        got = found.tensors.get(name)
        if got is None:
            problems.append(f"{name} missing")
        elif got[0] != shape:
            problems.append(f"{name} has shape {got[0]}, expected {shape}")
        elif qtype is not None and got[1] != qtype:
            problems.append(f"{name} is {got[1]}, expected {qtype}")
    problems += [f"unexpected tensor {name}" for name in found.tensors.keys() - expected.keys()]
    problems += [f"header key {key} missing" for key in keys if key not in found.keys]
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ReadBackMismatch(f"{where.name}: {'; '.join(problems[:3])}{more}")
