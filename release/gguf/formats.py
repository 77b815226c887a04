"""The GGUF types a release can ask for, and how each one is made.

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


@dataclass(frozen=True)
class GGUFFormat:
    name: str
    """The spelling in release.yaml (``q4_k_m``)."""
    file_type: F
    """``general.file_type``: what the file as a whole is."""
    tensor_type: Q | None
    """The type of the large tensors when we write them ourselves; None for K-quants."""
    min_top1: float
    """Least top-1 agreement with the merged model, per loader, on the probe positions
    where the merged model is confident (``agreement.CONFIDENT_GAP``). Measured on
    SmolLM2-135M, where small models are at their most sensitive: under llama.cpp, q8_0
    agrees on 0.97-0.98 of all positions (llama.cpp's own converter's q8_0 file is
    byte-identical to ours) and on 1.0 of the confident ones; every disagreement was a
    near-tie. q4_k_m agrees on 0.90 of all positions, f16 on 1.0."""
    embedding_type: Q | None = None
    """Token embedding and output head, when they keep more precision than the rest
    (4- and 5-bit types: llama.cpp keeps the head at higher precision too)."""

    @property
    def label(self) -> str:
        """The file name's spelling (``Q4_K_M``)."""
        return self.name.upper()

    @property
    def in_process(self) -> bool:
        return self.tensor_type is not None


FORMATS: dict[str, GGUFFormat] = {
    f.name: f
    for f in (
        GGUFFormat("f32", F.ALL_F32, Q.F32, 0.99),
        GGUFFormat("f16", F.MOSTLY_F16, Q.F16, 0.99),
        GGUFFormat("bf16", F.MOSTLY_BF16, Q.BF16, 0.97),
        GGUFFormat("q8_0", F.MOSTLY_Q8_0, Q.Q8_0, 0.99),
        GGUFFormat("q4_0", F.MOSTLY_Q4_0, Q.Q4_0, 0.8, Q.Q8_0),
        GGUFFormat("q4_1", F.MOSTLY_Q4_1, Q.Q4_1, 0.8, Q.Q8_0),
        GGUFFormat("q5_0", F.MOSTLY_Q5_0, Q.Q5_0, 0.85, Q.Q8_0),
        GGUFFormat("q5_1", F.MOSTLY_Q5_1, Q.Q5_1, 0.85, Q.Q8_0),
        GGUFFormat("q2_k", F.MOSTLY_Q2_K, None, 0.5),
        GGUFFormat("q3_k_m", F.MOSTLY_Q3_K_M, None, 0.7),
        GGUFFormat("q4_k_m", F.MOSTLY_Q4_K_M, None, 0.8),
        GGUFFormat("q5_k_m", F.MOSTLY_Q5_K_M, None, 0.85),
        GGUFFormat("q6_k", F.MOSTLY_Q6_K, None, 0.9),
    )
}


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
