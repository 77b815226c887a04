"""A 31B release on one 80 GB GPU with 128 GB of RAM passes every stage's preflight.

The checkpoint is Gemma-4-31B's text model in its real shapes (transformers' own
``Gemma4ForCausalLM`` built on the meta device: 60 layers, hidden 5376, intermediate
21504, 32 heads / 16 KV heads of 256, full-attention layers with 4 KV heads of 512 that
use their keys as values, a 262144-token vocabulary; 30.7B parameters) in 5 GB shards
whose headers are real and whose data are holes (sparse files: no weights written, no
disk used), with a LoRA of r=16 on all seven projections laid out the same way. The
estimates read headers only, so they see the real model.

The machine: one GPU, and 120 GiB available of 128 GiB (what the OS and the runner hold
aside), a disk big enough (disk is not what is asked here).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest

from release.checkpoint.safetensors import INDEX_NAME, OutTensor, plan_shards, shard_names
from release.core.units import human
from release.evaluate.needs import choose_plan
from release.gguf.needs import gguf_needs
from release.merge.needs import merge_needs
from release.preflight import Resources, refusal
from release.spec.schema import GGUFSpec, MergeSpec
from tests.support.gemma4_models import PROJECTIONS, gemma4_tokenizer

GPUS = 1
AVAILABLE_RAM = 120 * 2**30
RANK = 16
SHARD = 5 * 10**9
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
"""Gemma-4-31B-it's text config (its model card and config.json; no per-layer embeddings)."""


def _sparse_checkpoint(folder: Path, tensors: list[OutTensor]) -> None:
    """Shards of ``tensors`` with real headers and holes for data, and their index."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = plan_shards(tensors, SHARD)
    weight_map = {}
    for name, shard in zip(shard_names(len(shards)), shards, strict=True):
        header, offset = {}, 0
        for tensor in shard:
            header[tensor.name] = {
                "dtype": tensor.dtype,
                "shape": list(tensor.shape),
                "data_offsets": [offset, offset + tensor.nbytes],
            }
            offset += tensor.nbytes
            weight_map[tensor.name] = name
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)
        with (folder / name).open("wb") as file:
            file.write(struct.pack("<Q", len(raw)) + raw)
            file.truncate(8 + len(raw) + offset)  # a hole: no byte of it is written
    if len(shards) > 1:
        (folder / INDEX_NAME).write_text(json.dumps({"weight_map": weight_map}))


@pytest.fixture(scope="module")
def gemma4_31b(tmp_path_factory) -> tuple[Path, Path]:
    """The 31B checkpoint (base and merged alike: the same shapes) and its LoRA."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma4TextConfig

    root = tmp_path_factory.mktemp("gemma4-31b")
    tokenizer = gemma4_tokenizer()
    config = Gemma4TextConfig(
        **GEMMA4_31B,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    config.architectures = ["Gemma4ForCausalLM"]
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    tied = {"lm_head.weight"}  # tied to the embeddings: saved once, as the embeddings
    shapes = {n: tuple(p.shape) for n, p in model.state_dict().items() if n not in tied}
    model_dir = root / "model"
    _sparse_checkpoint(model_dir, [OutTensor(n, "BF16", s) for n, s in shapes.items()])
    config.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    adapter = root / "adapter"
    lora = []
    for name, (out, inp) in ((n, s) for n, s in shapes.items() if len(s) == 2):
        if name.split(".")[-2] in PROJECTIONS:
            module = "base_model.model." + name.removesuffix(".weight")
            lora += [OutTensor(f"{module}.lora_A.weight", "F32", (RANK, inp))]
            lora += [OutTensor(f"{module}.lora_B.weight", "F32", (out, RANK))]
    _sparse_checkpoint(adapter, lora)
    (adapter / "model.safetensors").rename(adapter / "adapter_model.safetensors")
    settings = {"peft_type": "LORA", "r": RANK, "lora_alpha": 2 * RANK}
    settings |= {"target_modules": PROJECTIONS, "base_model_name_or_path": str(model_dir)}
    (adapter / "adapter_config.json").write_text(json.dumps(settings))
    return model_dir, adapter


def _machine(tmp_path: Path) -> Resources:
    return Resources(tmp_path, 10**13, AVAILABLE_RAM, "RAM")


def test_the_checkpoint_is_gemma4_31b(gemma4_31b):
    from release.checkpoint.safetensors import parameter_counts

    parameters, _ = parameter_counts(gemma4_31b[0])
    assert math.isclose(parameters, 30.7e9, rel_tol=0.02), parameters


def test_merge_and_evaluate_fit_one_gpu_and_128_gb(gemma4_31b, tmp_path):
    model_dir, adapter = gemma4_31b
    merge = MergeSpec()
    needs = merge_needs(model_dir, adapter, merge.dtype, merge.shard_size)
    assert refusal("merge", needs, _machine(tmp_path)) is None, human(needs.memory_bytes, "bytes")
    plan, needs = choose_plan(model_dir, model_dir, adapter, GPUS, AVAILABLE_RAM)
    assert (plan.dtype, plan.gpus) == ("bfloat16", 1)
    assert refusal("evaluate", needs, _machine(tmp_path)) is None
    assert needs.memory_bytes < 16 * 10**9  # one shard and the logits, not the model


def test_gguf_fits_one_gpu_and_128_gb(gemma4_31b, tmp_path):
    model_dir, _ = gemma4_31b
    needs = gguf_needs(model_dir, GGUFSpec().types)
    problem = refusal("gguf", needs, _machine(tmp_path))
    assert problem is None, problem.message
