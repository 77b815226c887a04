"""A 31B release on one 80 GB GPU with 128 GB of RAM passes every stage's preflight.

The checkpoint is Gemma-4-31B's text model in its real shapes (transformers' own
``Gemma4ForCausalLM`` built on the meta device: 60 layers, hidden 5376, intermediate
21504, 32 heads / 16 KV heads of 256, full-attention layers with 4 KV heads of 512 that
use their keys as values, a 262144-token vocabulary; 30.7B parameters) in 5 GB shards
whose headers are real and whose data are holes (``tests.support.sparse_models``: no
weights written, no disk used), with a LoRA of r=16 on all seven projections laid out
the same way, and a tokenizer of 262144 pieces. The estimates read headers only, so
they see the real model.

The machine: one GPU, and 120 GiB available of 128 GiB (what the OS and the runner hold
aside), a disk big enough (disk is not what is asked here).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from release.core.units import human
from release.evaluate.needs import choose_plan
from release.gguf.needs import gguf_needs
from release.merge.needs import merge_needs
from release.preflight import Resources, refusal
from release.spec.schema import GGUFSpec, MergeSpec
from tests.support.gemma4_models import gemma4_tokenizer
from tests.support.sparse_models import SHAPES, write_sparse_lora, write_sparse_model

GPUS = 1
AVAILABLE_RAM = 120 * 2**30
RANK = 16


@pytest.fixture(scope="module")
def gemma4_31b(tmp_path_factory) -> tuple[Path, Path]:
    """The 31B checkpoint (base and merged alike: the same shapes) and its LoRA."""
    root = tmp_path_factory.mktemp("gemma4-31b")
    model_dir, adapter = root / "model", root / "adapter"
    shapes = write_sparse_model(model_dir, SHAPES["Gemma-4-31B, text"], gemma4_tokenizer())
    write_sparse_lora(adapter, model_dir, shapes, RANK)
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
