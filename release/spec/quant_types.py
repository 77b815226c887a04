"""The GGUF types a release can ask for: one row each, and every list of them derived.

The spec's ``GGUFType``, the exporter's formats (``release.gguf.formats``), the size
estimates (``release.gguf.sizes``) and the starter release.yaml's comment all read this
table; adding a type is adding its row. Names of gguf-py's enums are kept as strings, so
release.yaml is checked without importing gguf-py (tests hold each row against it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QuantType:
    name: str
    """The spelling in release.yaml (``q4_k_m``); the file name's is its upper case."""
    ggml_type: str
    """gguf-py's ``GGMLQuantizationType`` of the bulk of the tensors (``Q4_K``)."""
    file_type: str
    """gguf-py's ``LlamaFileType``: ``general.file_type``, what the file as a whole is."""
    block_size: int
    """Weights per block of ``ggml_type`` (1 for the float types)."""
    min_top1: float
    """Least top-1 agreement with the merged model, per loader, on the probe positions
    where the merged model is confident (``release.gguf.agreement.CONFIDENT_GAP``).
    Measured on SmolLM2-135M, where small models are at their most sensitive: under
    llama.cpp, q8_0 agrees on 0.97-0.98 of all positions (llama.cpp's own converter's q8_0
    file is byte-identical to ours) and on 1.0 of the confident ones; every disagreement
    was a near-tie. q4_k_m agrees on 0.90 of all positions, f16 on 1.0."""
    kquant: bool = False
    """Made by llama.cpp's quantizer from our f16 file (it mixes types per tensor, its own
    rules: ``release.gguf.kquant_types``); the others our exporter writes itself."""
    iquant: bool = False
    """An IQ type (i-quants: lattice codebooks)."""
    needs_imatrix: bool = False
    """llama.cpp refuses to make it without an importance matrix."""
    embedding_type: str | None = None
    """Token embedding and output head, when they keep more precision than the rest
    (4- and 5-bit types written in process: llama.cpp keeps the head at higher
    precision too)."""


QUANT_TYPES: tuple[QuantType, ...] = (
    QuantType("f32", "F32", "ALL_F32", 1, 0.99),
    QuantType("f16", "F16", "MOSTLY_F16", 1, 0.99),
    QuantType("bf16", "BF16", "MOSTLY_BF16", 1, 0.97),
    QuantType("q8_0", "Q8_0", "MOSTLY_Q8_0", 32, 0.99),
    QuantType("q4_0", "Q4_0", "MOSTLY_Q4_0", 32, 0.8, embedding_type="Q8_0"),
    QuantType("q4_1", "Q4_1", "MOSTLY_Q4_1", 32, 0.8, embedding_type="Q8_0"),
    QuantType("q5_0", "Q5_0", "MOSTLY_Q5_0", 32, 0.85, embedding_type="Q8_0"),
    QuantType("q5_1", "Q5_1", "MOSTLY_Q5_1", 32, 0.85, embedding_type="Q8_0"),
    QuantType("q2_k", "Q2_K", "MOSTLY_Q2_K", 256, 0.5, kquant=True),
    QuantType("q3_k_m", "Q3_K", "MOSTLY_Q3_K_M", 256, 0.7, kquant=True),
    QuantType("q4_k_m", "Q4_K", "MOSTLY_Q4_K_M", 256, 0.8, kquant=True),
    QuantType("q5_k_m", "Q5_K", "MOSTLY_Q5_K_M", 256, 0.85, kquant=True),
    QuantType("q6_k", "Q6_K", "MOSTLY_Q6_K", 256, 0.9, kquant=True),
)

QUANT_TYPE: dict[str, QuantType] = {row.name: row for row in QUANT_TYPES}
QUANT_NAMES: tuple[str, ...] = tuple(QUANT_TYPE)
DEFAULT_TYPES: tuple[str, ...] = ("f16", "q8_0")
"""What a release exports when its spec names no ``gguf.types``."""
