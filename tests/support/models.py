"""Tiny random models, built locally, for fast tests (mergekit's make_picollama, ours)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase


def make_tiny_llama(
    path: Path, tokenizer: PreTrainedTokenizerBase, *, seed: int = 0, **overrides
) -> Path:
    """A 2-layer Llama with hidden size 64 and the SmolLM2 tokenizer, saved as safetensors."""
    settings = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    config = LlamaConfig(**(settings | overrides))
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
