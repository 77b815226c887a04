"""The GGUF types a release can ask for (``release.spec.quant_types``), and how each one
is made.

Two families. The *in-process* types are written tensor by tensor by our exporter with
gguf-py's quantizers (``gguf.quants``): f32, f16, bf16 and the legacy block types q8_0,
q4_0, q4_1, q5_0, q5_1. The *K-quants* (q2_k … q6_k) need llama.cpp's quantizer, which
mixes types per tensor by its own rules; they are made from our f16 file.
"""

from __future__ import annotations

from dataclasses import dataclass

import gguf
from gguf import GGMLQuantizationType as Q
from gguf import LlamaFileType as F

from release.spec.quant_types import QUANT_TYPES, QuantType


@dataclass(frozen=True)
class GGUFFormat:
    """A row of ``release.spec.quant_types`` with gguf-py's types for its names."""

    name: str
    """The spelling in release.yaml (``q4_k_m``)."""
    file_type: F
    """``general.file_type``: what the file as a whole is."""
    tensor_type: Q | None
    """The type of the large tensors when we write them ourselves; None for K-quants."""
    min_top1: float
    """Least top-1 agreement with the merged model (``QuantType.min_top1``)."""
    embedding_type: Q | None = None
    """Token embedding and output head, when they keep more precision than the rest."""

    @property
    def label(self) -> str:
        """The file name's spelling (``Q4_K_M``)."""
        return self.name.upper()

    @property
    def in_process(self) -> bool:
        return self.tensor_type is not None


def _format(row: QuantType) -> GGUFFormat:
    return GGUFFormat(
        row.name,
        F[row.file_type],
        None if row.kquant else Q[row.ggml_type],
        row.min_top1,
        Q[row.embedding_type] if row.embedding_type else None,
    )


FORMATS: dict[str, GGUFFormat] = {row.name: _format(row) for row in QUANT_TYPES}


def file_name(release_name: str, fmt: GGUFFormat) -> str:
    """``<name>-<TYPE>.gguf``, the spelling llama.cpp users expect on the Hub."""
    return f"{release_name}-{fmt.label}.gguf"


def storage_type(fmt: GGUFFormat, gguf_name: str, shape: tuple[int, ...]) -> Q:
    """The type one tensor is stored in, by llama.cpp's conventions: vectors and norms
    stay f32; a row that does not split into whole blocks falls back to f16."""
    assert fmt.tensor_type is not None
    if len(shape) <= 1 or gguf_name.endswith("_norm.weight"):
        return Q.F32
    wanted = fmt.tensor_type
    if fmt.embedding_type is not None and gguf_name in ("token_embd.weight", "output.weight"):
        wanted = fmt.embedding_type
    block_size, _ = gguf.GGML_QUANT_SIZES[wanted]
    if shape[-1] % block_size:
        return Q.F16
    return wanted
