"""Read a written GGUF's header back and check it is what we meant to write: every
expected tensor present with the right shape (and type, where we chose it), its data
inside the file, and the header keys llama.cpp needs to build the model.

The header is walked here with gguf-py's value types, skipping the values: gguf-py's
``GGUFReader`` builds a numpy view of every item of every array, and on a 49k-token
vocabulary (tokens, scores, types, merges) that took 1.5-3 s per file, a third of the
GGUF stage's checks on the demo. Values are not what this check is about; llama.cpp's
load of the same file right after (or transformers' GGUF loader, on gguf-py) reads them
all. ``tests/test_gguf_readback.py`` holds this walk to ``GGUFReader``'s on real files.
"""

from __future__ import annotations

import mmap
import struct
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


_SCALARS = {
    gguf.GGUFValueType.UINT8: 1,
    gguf.GGUFValueType.INT8: 1,
    gguf.GGUFValueType.BOOL: 1,
    gguf.GGUFValueType.UINT16: 2,
    gguf.GGUFValueType.INT16: 2,
    gguf.GGUFValueType.UINT32: 4,
    gguf.GGUFValueType.INT32: 4,
    gguf.GGUFValueType.FLOAT32: 4,
    gguf.GGUFValueType.UINT64: 8,
    gguf.GGUFValueType.INT64: 8,
    gguf.GGUFValueType.FLOAT64: 8,
}


class _Header:
    """A little-endian GGUF header, read from ``offset`` on."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data, self.offset = data, 0

    def number(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        size = self.number("<Q")
        self.offset += size
        if self.offset > len(self.data):
            raise struct.error("past the end")
        return self.data[self.offset - size : self.offset].decode("utf-8")

    def skip(self, kind: int) -> None:
        if kind == gguf.GGUFValueType.STRING:
            size = self.number("<Q")
            self.offset += size
        elif kind == gguf.GGUFValueType.ARRAY:
            item, count = self.number("<I"), self.number("<Q")
            if item in _SCALARS:
                self.offset += _SCALARS[gguf.GGUFValueType(item)] * count
            else:
                for _ in range(count):
                    self.skip(item)
        else:
            self.offset += _SCALARS[gguf.GGUFValueType(kind)]


def read_back(path: Path) -> ReadBack:
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            return _read_header(_Header(data), path)
        except struct.error:
            raise ReadBackMismatch(
                f"{path.name}: the header runs past the end of the file"
            ) from None
        except ReadBackMismatch:
            raise
        except (ValueError, KeyError) as exc:  # a type no GGUF holds
            raise ReadBackMismatch(f"{path.name}: not a readable GGUF header ({exc})") from None


def _read_header(header: _Header, path: Path) -> ReadBack:
    if header.number("<I") != gguf.GGUF_MAGIC or header.number("<I") != gguf.GGUF_VERSION:
        raise ReadBackMismatch(f"{path.name}: not a GGUF v{gguf.GGUF_VERSION} file")
    tensor_count, kv_count = header.number("<Q"), header.number("<Q")
    keys, architecture, alignment = set(), "", gguf.GGUF_DEFAULT_ALIGNMENT
    for _ in range(kv_count):
        key, kind = header.string(), header.number("<I")
        keys.add(key)
        if key == "general.architecture" and kind == gguf.GGUFValueType.STRING:
            architecture = header.string()
        elif key == "general.alignment" and kind == gguf.GGUFValueType.UINT32:
            alignment = header.number("<I")
        else:
            header.skip(kind)
    tensors, end = {}, 0
    for _ in range(tensor_count):
        name = header.string()
        dims = [header.number("<Q") for _ in range(header.number("<I"))]
        qtype = gguf.GGMLQuantizationType(header.number("<I"))
        offset = header.number("<Q")
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        elements = 1
        for dim in dims:
            elements *= dim
        end = max(end, offset + elements // block * size)
        tensors[name] = (tuple(reversed(dims)), qtype.name)
    data_start = -(-header.offset // alignment) * alignment
    if data_start + end > len(header.data):
        raise ReadBackMismatch(f"{path.name}: the tensor data runs past the end of the file")
    return ReadBack(tensors, keys, architecture)


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
