"""Adapters and bases for the intake and merge tests, built locally with real PEFT.

A freshly initialised LoRA has B = 0 (and DoRA magnitudes equal to the weight norms),
so merging it changes nothing and any merge would pass; ``make_adapter`` randomises
every trainable tensor before saving so that a wrong formula shows.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, Gemma4ForCausalLM, Gemma4TextConfig


def make_tiny_gemma4(path: Path, tokenizer=None, *, seed: int = 0) -> Path:
    """A 2-layer random Gemma 4 text model (one sliding, one full attention layer)."""
    vocab = len(tokenizer) if tokenizer is not None else 512
    config = Gemma4TextConfig(
        vocab_size=vocab,
        vocab_size_per_layer_input=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        layer_types=["sliding_attention", "full_attention"],
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        hidden_size_per_layer_input=16,
        sliding_window=32,
        max_position_embeddings=256,
    )
    if tokenizer is not None:  # the tokenizer's own ids, as a real checkpoint has them
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = Gemma4ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(path)
    if tokenizer is not None:
        tokenizer.save_pretrained(path)
    return path


def make_adapter(base_dir: Path, path: Path, *, seed: int = 1, **lora: object) -> Path:
    """A PEFT LoRA on ``base_dir`` with every trainable tensor randomised, saved."""
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.bfloat16)
    config = LoraConfig(**{"r": 4, "lora_alpha": 8, **lora})  # type: ignore[arg-type]
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if param.requires_grad:
                noise = torch.randn(param.shape, generator=generator).to(param.dtype)
                scale = 0.1 * param.float().std().item() if "magnitude" in name else 0.05
                param.add_(noise * (scale or 0.05))
    peft_model.save_pretrained(path)
    return path


def peft_merge(base_dir: Path, adapter_dir: Path, path: Path) -> Path:
    """The reference: PEFT's merge_and_unload, saved by transformers."""
    from peft import PeftModel

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    merged.save_pretrained(path)
    return path


def load_folder(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a saved model folder, by checkpoint name."""
    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        tensors |= load_file(file)
    return tensors


_MANTISSA_BITS = {torch.bfloat16: 7, torch.float16: 10, torch.float32: 23, torch.float64: 52}


def max_ulps(ours: torch.Tensor, theirs: torch.Tensor, base: torch.Tensor | None = None) -> float:
    """Largest |ours - theirs| in units in the last place of their dtype, the unit taken
    at the larger of the two values and the base value the merge started from.

    Measuring at the base's scale matters where PEFT rounds twice: for an Embedding it
    casts the delta to the weight dtype before adding (``peft.tuners.lora.layer``), so
    where W and delta nearly cancel, its result is off by one ulp of W, not of W + delta.
    """
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, (ours.dtype, theirs.dtype)
    if not ours.is_floating_point() or ours.numel() == 0:
        return 0.0 if torch.equal(ours, theirs) else float("inf")
    a, b = ours.double(), theirs.double()
    scale = torch.maximum(a.abs(), b.abs())
    if base is not None:
        scale = torch.maximum(scale, base.double().abs())
    _, exponent = torch.frexp(scale)
    ulp = torch.ldexp(torch.ones_like(scale), exponent - 1 - _MANTISSA_BITS[ours.dtype])
    ulp = torch.where(scale > 0, ulp, torch.full_like(ulp, torch.finfo(ours.dtype).tiny))
    # equal infinities (the clipped linears' open bounds, ±inf) are no difference
    difference = torch.where(a == b, torch.zeros_like(a), (a - b).abs())
    return (difference / ulp).max().item()
