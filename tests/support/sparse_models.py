"""Real models' shapes as checkpoints that take no disk: real safetensors headers, holes
for data (sparse files: no weight is written). The preflight's estimates read headers
only, so they see the real model.

- ``SHAPES``: published models' configs (their config.json's fields that set a tensor's
  shape), by name, for transformers' own config classes; ``GEMMA4_31B`` among them.
- ``write_sparse_model``: a model folder of one of them (config, tokenizer, bf16 shards
  with their index), built from transformers' own model on the meta device
  (``real_model``: the config and the tensors' shapes; ``save_model_files``).
- ``write_sparse_lora``: a LoRA on the model's projections, laid out as PEFT saves one.
- ``write_sparse_checkpoint``: the shards of any list of tensors, and their index.

Used by tests/test_preflight_31b.py, tests/test_preflight_e4b.py, bench/runner_needs.py
and bench/scale.py (its Gemma-4-E4B, with random weights written).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release.checkpoint.safetensors import (
    INDEX_NAME,
    OutTensor,
    header_bytes,
    plan_shards,
    shard_names,
)

SHARD = 5 * 10**9
"""The published checkpoints' shard size, about."""
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class RealShape:
    """A published model's shape: the config class that builds it and its fields."""

    config_class: str
    """transformers' config class (``LlamaConfig``...)."""
    architecture: str
    fields: dict[str, Any] = field(default_factory=dict)


LLAMA_3_2_1B = {
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "vocab_size": 128256,
    "tie_word_embeddings": True,
}
LLAMA_3_2_3B = LLAMA_3_2_1B | {"hidden_size": 3072, "num_hidden_layers": 28}
LLAMA_3_2_3B |= {"num_attention_heads": 24, "head_dim": 128}
LLAMA_3_1_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
}
LLAMA_40B = LLAMA_3_1_8B | {"hidden_size": 8192, "intermediate_size": 28672}
LLAMA_40B |= {"num_hidden_layers": 44, "num_attention_heads": 64}
"""Llama-3.1-70B's widths at 44 of its 80 layers: 39.7B parameters."""
QWEN3_1_7B = {
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
}
QWEN3_4B = QWEN3_1_7B | {"hidden_size": 2560, "intermediate_size": 9728}
QWEN3_4B |= {"num_hidden_layers": 36, "num_attention_heads": 32}
GEMMA4_E4B = {
    "hidden_size": 2560,
    "intermediate_size": 10240,
    "num_hidden_layers": 42,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 7,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 256,
    "global_head_dim": 512,
    "num_kv_shared_layers": 18,
    "sliding_window": 512,
    "vocab_size": 262144,
    "hidden_size_per_layer_input": 256,
    "vocab_size_per_layer_input": 262144,
    "final_logit_softcapping": 30.0,
    "tie_word_embeddings": True,
}
"""Gemma-4-E4B-it's text model: per-layer embeddings (a 262144 x 42*256 table), the last
18 layers reusing earlier layers' keys and values."""
GEMMA4_31B = {
    "hidden_size": 5376,
    "intermediate_size": 21504,
    "num_hidden_layers": 60,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 10,
    "num_attention_heads": 32,
    "num_key_value_heads": 16,
    "head_dim": 256,
    "global_head_dim": 512,
    "num_global_key_value_heads": 4,
    "attention_k_eq_v": True,
    "sliding_window": 1024,
    "vocab_size": 262144,
    "hidden_size_per_layer_input": 0,
    "vocab_size_per_layer_input": 262144,
    "final_logit_softcapping": 30.0,
    "tie_word_embeddings": True,
}
"""Gemma-4-31B-it's text model (no per-layer embeddings; full-attention layers with 4 KV
heads of 512 that use their keys as values)."""

SHAPES = {
    "Llama-3.2-1B": RealShape("LlamaConfig", "LlamaForCausalLM", LLAMA_3_2_1B),
    "Qwen3-1.7B": RealShape("Qwen3Config", "Qwen3ForCausalLM", QWEN3_1_7B),
    "Llama-3.2-3B": RealShape("LlamaConfig", "LlamaForCausalLM", LLAMA_3_2_3B),
    "Qwen3-4B": RealShape("Qwen3Config", "Qwen3ForCausalLM", QWEN3_4B),
    "Gemma-4-E4B, text": RealShape("Gemma4TextConfig", "Gemma4ForCausalLM", GEMMA4_E4B),
    "Llama-3.1-8B": RealShape("LlamaConfig", "LlamaForCausalLM", LLAMA_3_1_8B),
    "Gemma-4-31B, text": RealShape("Gemma4TextConfig", "Gemma4ForCausalLM", GEMMA4_31B),
    "Llama 40B": RealShape("LlamaConfig", "LlamaForCausalLM", LLAMA_40B),
}
"""Their config.json's shape fields, from the models' cards and configs."""


def write_sparse_checkpoint(folder: Path, tensors: list[OutTensor], shard: int = SHARD) -> None:
    """Shards of ``tensors`` with real headers and holes for data, and their index."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = plan_shards(tensors, shard)
    weight_map = {}
    for name, planned in zip(shard_names(len(shards)), shards, strict=True):
        weight_map.update(dict.fromkeys((tensor.name for tensor in planned), name))
        header = header_bytes(planned)
        with (folder / name).open("wb") as file:
            file.write(header)
            # the data a hole: no byte of it is written
            file.truncate(len(header) + sum(tensor.nbytes for tensor in planned))
    if len(shards) > 1:
        (folder / INDEX_NAME).write_text(json.dumps({"weight_map": weight_map}))


def write_sparse_model(folder: Path, shape: RealShape, tokenizer) -> dict[str, tuple[int, ...]]:
    """``shape``'s model folder (``real_model``; ``save_model_files``) with bf16 shards of
    every tensor and their index. Returns the shapes."""
    config, shapes = real_model(shape, tokenizer)
    write_sparse_checkpoint(folder, [OutTensor(n, "BF16", s) for n, s in shapes.items()])
    save_model_files(folder, config, tokenizer)
    return shapes


def real_model(shape: RealShape, tokenizer) -> tuple[Any, dict[str, tuple[int, ...]]]:
    """``shape``'s config (the ``tokenizer``'s special ids) and the shape of every tensor a
    save writes (transformers' own model on the meta device; a tied head is saved once, as
    the embeddings)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    config = getattr(transformers, shape.config_class)(
        **shape.fields,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config.architectures = [shape.architecture]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    return config, {n: tuple(p.shape) for n, p in model.state_dict().items() if n not in tied}


def save_model_files(folder: Path, config, tokenizer) -> None:
    """The config and the tokenizer, its vocabulary filled to the model's."""
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    _fill_vocabulary(folder / "tokenizer.json", config.vocab_size)


def _fill_vocabulary(path: Path, rows: int) -> None:
    """Unused pieces added to the tokenizer's vocabulary up to the embedding's ``rows``,
    as a published tokenizer has them: the GGUF files (their token list, and for Gemma 4
    the embedding rows kept, ``gguf.gemma4.kept_rows``) are then the real model's."""
    tokenizer = json.loads(path.read_text(encoding="utf-8"))
    vocab = tokenizer["model"]["vocab"]
    start = 1 + max([*vocab.values(), *(t["id"] for t in tokenizer["added_tokens"])])
    vocab.update({f"<unused{i}>": i for i in range(start, rows)})
    path.write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")


def write_sparse_lora(
    adapter: Path, base: Path, shapes: dict[str, tuple[int, ...]], rank: int
) -> None:
    """A float32 LoRA of ``rank`` on every projection of ``shapes``, for ``base``."""
    lora = []
    for name, (out, inp) in ((n, s) for n, s in shapes.items() if len(s) == 2):
        if name.split(".")[-2] in PROJECTIONS:
            module = "base_model.model." + name.removesuffix(".weight")
            lora += [OutTensor(f"{module}.lora_A.weight", "F32", (rank, inp))]
            lora += [OutTensor(f"{module}.lora_B.weight", "F32", (out, rank))]
    write_sparse_checkpoint(adapter, lora)
    (adapter / "model.safetensors").rename(adapter / "adapter_model.safetensors")
    settings = {"peft_type": "LORA", "r": rank, "lora_alpha": 2 * rank}
    settings |= {"target_modules": PROJECTIONS, "base_model_name_or_path": str(base)}
    (adapter / "adapter_config.json").write_text(json.dumps(settings))
