"""A Gemma-4-E4B release on a 24 GB CPU machine (this one) passes the preflights.

Gemma-4-E4B-it is what most of our users fine-tune: 7.5B parameters in its text model,
2.8B of them one per-layer embedding table (262144 x 42*256). The checkpoint is its text
model in its real shapes, headers real and data holes (``tests.support.sparse_models``),
with a LoRA of r=16 on all seven projections: the estimates read headers only, so they
see the real model. The machine: no GPU, 22 GiB available of 24 GiB.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from release.core.units import human
from release.evaluate.needs import choose_plan
from release.merge.needs import MERGE_FP32_COPIES, merge_needs
from release.preflight import Resources, refusal
from release.spec.schema import GGUFSpec, MergeSpec
from tests.support.gemma4_models import gemma4_tokenizer
from tests.support.sparse_models import SHAPES, write_sparse_lora, write_sparse_model

AVAILABLE_RAM = 22 * 2**30
RANK = 16


@pytest.fixture(scope="module")
def gemma4_e4b(tmp_path_factory) -> tuple[Path, Path, dict[str, tuple[int, ...]]]:
    """The E4B checkpoint (base and merged alike), its LoRA and its tensors' shapes."""
    root = tmp_path_factory.mktemp("gemma4-e4b")
    model_dir, adapter = root / "model", root / "adapter"
    shapes = write_sparse_model(model_dir, SHAPES["Gemma-4-E4B, text"], gemma4_tokenizer())
    write_sparse_lora(adapter, model_dir, shapes, RANK)
    return model_dir, adapter, shapes


def _machine(tmp_path: Path) -> Resources:
    return Resources(tmp_path, 10**13, AVAILABLE_RAM, "RAM")


def test_the_merge_holds_a_chunk_of_the_per_layer_table_not_the_table(gemma4_e4b, tmp_path):
    model_dir, adapter, shapes = gemma4_e4b
    merge = MergeSpec()
    needs = merge_needs(model_dir, adapter, merge.dtype, merge.shard_size)
    assert refusal("merge", needs, _machine(tmp_path)) is None, human(needs.memory_bytes, "bytes")
    # the LoRA leaves the 2.8B-parameter table alone: it is copied, not taken whole in
    # float32 (three copies of it were 33.8 GB)
    table = max(shapes.values(), key=lambda shape: shape[0] * shape[-1])
    assert table[0] * table[-1] > 2.5e9
    assert needs.memory_bytes < 2 * 10**9
    assert needs.memory_bytes < MERGE_FP32_COPIES * 4 * table[0] * table[-1] / 20


def test_the_eval_runs_in_bf16_on_the_cpu(gemma4_e4b, tmp_path):
    model_dir, adapter, _ = gemma4_e4b
    plan, needs = choose_plan(model_dir, model_dir, adapter, 0, AVAILABLE_RAM)
    assert (plan.dtype, plan.gpus) == ("bfloat16", 0)
    assert refusal("evaluate", needs, _machine(tmp_path)) is None, human(
        needs.memory_bytes, "bytes"
    )


def test_the_gguf_stage_holds_a_block_of_the_per_layer_table(gemma4_e4b, tmp_path):
    from release.gguf.needs import gguf_needs

    model_dir, _, _ = gemma4_e4b
    needs = gguf_needs(model_dir, GGUFSpec().types)  # f16 and q8_0, the eval's reference kept
    problem = refusal("gguf", needs, _machine(tmp_path))
    assert problem is None, human(needs.memory_bytes, "bytes")
