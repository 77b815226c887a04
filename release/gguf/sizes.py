"""Estimated GGUF file sizes, so a person can choose quant types before exporting.

A GGUF file is mostly its tensors, stored in blocks: ``q8_0`` keeps 32 weights in 34
bytes, ``q4_k`` 256 weights in 144 bytes. The estimate is the parameter count times the
bits per weight of the block type that holds most tensors (gguf-py's
``GGML_QUANT_SIZES``). It needs only the parameter count, so it is there before the
merge, for choosing; a real file can be larger: small models keep some tensors in f32,
llama.cpp's ``_m`` mixes store a few in a larger type, and K-quants of a model whose rows
are not whole 256-weight blocks fall back to 32-weight types (SmolLM2-135M's q4_k_m file
is 40% larger than this estimate). Once the merged model exists, ``gguf_file_bytes``
(``release.gguf.needs``) plans every tensor with the byte counts below instead.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from release.spec.quant_types import QUANT_TYPE

if TYPE_CHECKING:
    from gguf import GGMLQuantizationType, GGUFWriter

_GGUF_TENSOR_ALIGNMENT = 32


def bulk_type(gguf_type: str) -> GGMLQuantizationType:
    """The block type that holds most of a ``gguf_type`` file."""
    from gguf import GGMLQuantizationType

    return GGMLQuantizationType[QUANT_TYPE[gguf_type].ggml_type]


def bits_per_weight(gguf_type: str) -> float:
    """Bits per weight of the block type that holds most of a ``gguf_type`` file."""
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[bulk_type(gguf_type)]
    return size * 8 / block


def estimate_gguf_bytes(parameters: int, types: Iterable[str]) -> dict[str, int]:
    """Estimated file size of each GGUF type for a model of ``parameters`` weights."""
    return {t: round(parameters * bits_per_weight(t) / 8) for t in types}


def gguf_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape a tensor has in a GGUF file: a 0-d tensor (Gemma 4's clipped linears'
    bounds, ``…input_max``) is written as 1-D of one value, as llama.cpp's converter
    writes it; GGUF has no scalars."""
    return shape or (1,)


def stored_nbytes(shape: tuple[int, ...], qtype: GGMLQuantizationType) -> int:
    """Bytes of a tensor of ``shape`` stored as ``qtype``."""
    import gguf

    return math.prod(gguf.quant_shape_to_byte_shape(gguf_shape(shape), qtype))


def aligned(nbytes: int) -> int:
    """``nbytes`` padded to GGUF's data alignment (every tensor's data, and the header
    before the first, are padded to it)."""
    return -(-nbytes // _GGUF_TENSOR_ALIGNMENT) * _GGUF_TENSOR_ALIGNMENT


def header_nbytes(writer: GGUFWriter) -> int:
    """The exact size of ``writer``'s header, keys and tensor infos, measured by having
    gguf-py write them (to a scratch file; no tensor data). Consumes ``writer``."""
    with tempfile.TemporaryDirectory(prefix="gguf-header-") as folder:
        path = Path(folder) / "header.gguf"
        writer.write_header_to_file(path=path)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        writer.close()
        return path.stat().st_size


def tensor_header_bytes(name: str, shape: tuple[int, ...]) -> int:
    """A tensor's entry in the GGUF header (name, dimensions, type, offset) plus the
    most its data's alignment can add."""
    dims = len(gguf_shape(shape))
    return 8 + len(name.encode()) + 4 + 8 * dims + 4 + 8 + _GGUF_TENSOR_ALIGNMENT


def tokenizer_json_bytes(path: Path) -> int:
    """The tokenizer's share of a GGUF that llama.cpp's converter writes, from
    tokenizer.json: each token and merge a length-prefixed string, a score and a type
    per token, the chat template."""
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    tokens = {int(i): t for t, i in (model.get("vocab") or {}).items()}
    tokens |= {int(entry["id"]): entry["content"] for entry in data.get("added_tokens") or []}
    strings = sum(8 + len(token.encode()) for token in tokens.values())
    merges = sum(
        8 + len(" ".join(m) if isinstance(m, list) else m) for m in model.get("merges") or []
    )
    template = path.with_name("chat_template.jinja")
    chat = template.stat().st_size if template.is_file() else 0
    return strings + merges + 8 * (max(tokens, default=0) + 1) + chat + 4096
