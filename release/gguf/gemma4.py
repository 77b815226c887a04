"""Gemma 4's text model as GGUF arch ``gemma4``: what differs from the common layout.

Read from the pinned llama.cpp converter's ``Gemma4Model`` (conversion/gemma.py, over
``Gemma3Model`` and ``TextModel``), so that our file equals its output key for key and
tensor for tensor:

- header keys in the converter's order, including the values it writes twice (its base
  class writes ``key_length`` as the sliding layers' head dim, Gemma 4 then rewrites it
  as the full layers'; a rewritten key keeps its first place): per-layer head dims and
  KV-head counts for sliding vs full attention, the sliding-window pattern, shared KV
  layers, the per-layer embedding width, the final-logit softcap, rotary dims per kind;
- ``rope_freqs.weight``, written first: the full layers' "proportional" RoPE rotates only
  ``partial_rotary_factor`` of each head, which llama.cpp expresses as frequency factors
  of 1 for the rotated pairs and 1e30 (no rotation) for the rest;
- ``…layer_scalar`` named as a weight; no norm offset (Gemma 4's RMSNorm multiplies by
  ``w``, unlike Gemma 3's ``1 + w``); the embedding rows past the tokenizer's dropped;
- the ``gemma4`` tokenizer model (``vocab.gemma4_vocab``).

The 26B-A4B mixture-of-experts variant is not built in (``unsupported_reason``): its
router and expert tensors go to llama.cpp's converter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np

Config = dict[str, Any]

UNROTATED = 1e30
"""The frequency factor llama.cpp reads as "do not rotate this pair"."""


def unsupported_reason(config: Config) -> str | None:
    """What of this Gemma 4 config the built-in exporter does not write (None: all)."""
    if config.get("enable_moe_block") or config.get("num_experts"):
        return "Gemma 4's mixture-of-experts layers are not built in"
    full = _rope(config, "full_attention")
    if full.get("rope_type") != "proportional":
        return f"Gemma 4 full-attention rope {full.get('rope_type')!r} is not built in"
    return None


def _rope(config: Config, layer_type: str) -> Config:
    return (config.get("rope_parameters") or {}).get(layer_type) or {}


def _full_layer_value(config: Config, key: str, per_layer_key: str) -> Any:
    """A full-attention layer's setting: ``key`` in the config, else the first full
    layer's entry in ``per_layer_config`` (as the converter looks it up)."""
    if (value := config.get(key)) is not None:
        return value
    layer_types = config.get("layer_types", [])
    for index, layer in (config.get("per_layer_config") or {}).items():
        index = int(index)
        full = index < len(layer_types) and layer_types[index] == "full_attention"
        if full and per_layer_key in layer:
            return layer[per_layer_key]
    return None


def write_hparams(config: Config, writer: gguf.GGUFWriter) -> None:
    """The header keys, in the order llama.cpp's converter writes them."""
    layers = config["num_hidden_layers"]
    writer.add_block_count(layers)
    writer.add_context_length(config.get("max_position_embeddings", 131072))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config.get("num_attention_heads", 8))
    writer.add_head_count_kv(config.get("num_key_value_heads", 4))
    if (theta := _rope(config, "full_attention").get("rope_theta")) is not None:
        writer.add_rope_freq_base(theta)
    if (theta_swa := _rope(config, "sliding_attention").get("rope_theta")) is not None:
        writer.add_rope_freq_base_swa(theta_swa)
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    head_dim_full = _full_layer_value(config, "global_head_dim", "head_dim")
    head_dim_swa = config["head_dim"]
    writer.add_key_length(head_dim_full)
    writer.add_value_length(head_dim_full)
    if softcap := config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(softcap)
    if config.get("sliding_window_pattern") != 1:
        writer.add_sliding_window(config["sliding_window"])
    shared = config["num_kv_shared_layers"]
    writer.add_shared_kv_layers(shared)
    writer.add_embedding_length_per_layer_input(config.get("hidden_size_per_layer_input") or 0)
    swa_layers = [kind == "sliding_attention" for kind in config["layer_types"]]
    writer.add_sliding_window_pattern(swa_layers)
    writer.add_key_length_swa(head_dim_swa)
    writer.add_value_length_swa(head_dim_swa)
    if config.get("use_double_wide_mlp", False):
        n_ff = config["intermediate_size"]  # the KV-shared layers' MLPs are twice as wide
        widths = [n_ff if layer < layers - shared else n_ff * 2 for layer in range(layers)]
        writer.add_feed_forward_length(widths)
    kv_full = _full_layer_value(config, "num_global_key_value_heads", "num_key_value_heads")
    kv_swa = config.get("num_key_value_heads")
    if kv_full is not None and kv_swa is not None:
        writer.add_head_count_kv([kv_swa if swa else kv_full for swa in swa_layers])
    writer.add_rope_dimension_count(int(head_dim_full))  # "proportional": rope_freqs
    writer.add_rope_dimension_count_swa(int(head_dim_swa))


def rope_freqs(config: Config) -> np.ndarray:
    """``rope_freqs.weight``: per rotary pair of a full layer's head, 1 where it rotates
    and ``UNROTATED`` past ``partial_rotary_factor``."""
    head_dim_full = _full_layer_value(config, "global_head_dim", "head_dim")
    factor = _rope(config, "full_attention")["partial_rotary_factor"]
    rotated = int(head_dim_full * factor / 2)
    unrotated = int(head_dim_full / 2) - rotated
    return np.array([1.0] * rotated + [UNROTATED] * unrotated, dtype=np.float32)


def extra_tensors(config: Config) -> list[tuple[str, np.ndarray]]:
    """Tensors the checkpoint does not hold, written before its own."""
    name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
    return [(name, rope_freqs(config))]


def hf_name(name: str) -> str:
    """The checkpoint name the tensor map knows: Gemma 4's per-layer scalars are stored
    without the ``.weight`` suffix the map expects."""
    return f"{name}.weight" if name.endswith(("layer_scalar", "per_dim_scale")) else name


def kept_rows(model_dir: Path, name: str) -> int | None:
    """The token embedding keeps the tokenizer's rows only (the converter's count: the
    tokenizer.json vocabulary plus its added tokens); None for every other tensor."""
    if "embed_tokens.weight" not in name:
        return None
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    return len(tokenizer["model"]["vocab"]) + len(tokenizer["added_tokens"])
