"""The type llama.cpp's quantizer gives each tensor of a K-quant file, for sizing it
before it is written.

A K-quant file is not its bulk type throughout. llama.cpp's ``llama_tensor_get_type``
(src/llama-quant.cpp, as in the libllama llama-cpp-python 0.3.36 builds: its
``tensor_type_fallback`` warnings are the ones this mirrors) picks per tensor:

- which tensors are quantized at all (``tensor_allows_quantization``): 2-D weights, not
  norms, not Gemma 4's per-layer model projection; the rest keep the source file's type
  (f32 vectors);
- the ``_m`` mixes (``llama_tensor_get_type_impl``): the output head, the token
  embedding when it is tied to the head, and Gemma 4's per-layer token embedding in
  q6_k (measured on Gemma 4 files llama.cpp quantized: q2_k to q6_k); attn_v and
  ffn_down in more bits in the first and last eighth of the layers and every third
  between (``use_more_bits``), or in the first layers; q2_k and q3_k_m lift attn_output;
- the fallback (``tensor_type_fallback``): a row that is not a whole number of 256-weight
  blocks is stored in a 32-weight type instead (q4_k -> q5_0, q6_k -> q8_0...), which
  on a 576-wide model like SmolLM2-135M is most of the file.

Left out, as the release never meets them: mixture-of-experts rules (``n_expert``),
Falcon's and 70B models' variants (the latter lifts attn_v, a few tenths of a percent),
the IQ and ``_s``/``_l`` types, importance matrices and per-tensor overrides.
"""

from __future__ import annotations

import re

from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q

from release.gguf.sizes import bulk_type

_NOT_QUANTIZED = (
    "_norm.weight",
    "ffn_gate_inp.weight",
    "position_embd.weight",
    "token_types.weight",
    "ssm_conv1d",
    "attn_rel_b.weight",
    "per_layer_model_proj.weight",
)
_FALLBACK = {Q.Q2_K: Q.Q4_0, Q.Q3_K: Q.Q4_0, Q.Q4_K: Q.Q5_0, Q.Q5_K: Q.Q5_1, Q.Q6_K: Q.Q8_0}
_LAYER = re.compile(r"blk\.(\d+)\.")


def kquant_tensor_type(
    name: str,
    shape: tuple[int, ...],
    gguf_type: str,
    layer_count: int,
    *,
    source_type: Q = Q.F16,
    gqa: int = 1,
    tied: bool = False,
) -> Q:
    """The type of GGUF tensor ``name`` (``shape`` in PyTorch order, rows last) in a
    ``gguf_type`` file (q2_k, q3_k_m, q4_k_m, q5_k_m, q6_k) quantized by llama.cpp from a
    file that holds it as ``source_type``. ``gqa``: query heads per key/value head;
    ``tied``: the model has no output.weight, its token embedding is the head."""
    if len(shape) < 2 or not name.endswith("weight") or any(s in name for s in _NOT_QUANTIZED):
        return source_type
    chosen = _mix_type(name, shape[-1], gguf_type, layer_count, gqa, tied)
    return _fallback(chosen, shape[-1])


def _mix_type(name: str, ncols: int, gguf_type: str, n: int, gqa: int, tied: bool) -> Q:
    bulk = bulk_type(gguf_type)
    found = _LAYER.match(name)
    layer = int(found.group(1)) if found else 0
    head_like = name in ("output.weight", "per_layer_token_embd.weight")
    if head_like or (tied and name == "token_embd.weight"):
        return Q.Q8_0 if ncols % GGML_QUANT_SIZES[bulk][0] else Q.Q6_K
    # llama.cpp counts these tensors in name order, one per layer: the count is the layer
    if any(s in name for s in ("attn_qkv.weight", "attn_kv_b.weight", "attn_v.weight")):
        if gguf_type == "q2_k":
            return Q.Q4_K if gqa >= 4 else Q.Q3_K
        if gguf_type == "q3_k_m":
            return Q.Q5_K if layer < 2 else Q.Q4_K
        if gguf_type in ("q4_k_m", "q5_k_m") and _use_more_bits(layer, n):
            return Q.Q6_K
    elif "ffn_down" in name:
        if gguf_type == "q2_k":
            return Q.Q3_K
        if gguf_type == "q3_k_m":
            return Q.Q5_K if layer < n // 16 else Q.Q4_K
        if gguf_type in ("q4_k_m", "q5_k_m") and _use_more_bits(layer, n):
            return Q.Q6_K
    elif "attn_output.weight" in name:
        return {"q2_k": Q.Q3_K, "q3_k_m": Q.Q4_K}.get(gguf_type, bulk)
    return bulk


def _use_more_bits(layer: int, n: int) -> bool:
    return layer < n // 8 or layer >= 7 * n // 8 or (layer - n // 8) % 3 == 2


def _fallback(qtype: Q, ncols: int) -> Q:
    if ncols % GGML_QUANT_SIZES[qtype][0] == 0:
        return qtype
    fallback = _FALLBACK.get(qtype, Q.F16)
    return fallback if ncols % GGML_QUANT_SIZES[fallback][0] == 0 else Q.F16
