"""The merge a block of rows at a time gives the bytes of the whole-tensor formula, and
torch's float32 merge rounded by torch, on tensors larger than a read chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from release.checkpoint.safetensors import (
    OutTensor,
    ShardWriter,
    from_float32,
    list_tensors,
    plan_shards,
    read_array,
    to_float32,
)
from release.merge import blocks, lora

ROWS, WIDTH, RANK = 4500, 1024, 8
"""A bf16 matrix of 9.2 MB: two read chunks, each of many blocks, the last ones short."""


def _settings(fan_in_fan_out: bool) -> lora.LoraSettings:
    return lora.LoraSettings(
        r=RANK, alpha=16, dropout=0.0, use_rslora=False, use_dora=False,
        fan_in_fan_out=fan_in_fan_out, target_modules=[], modules_to_save=[],
        rank_pattern={}, alpha_pattern={}, base_model_name_or_path=None, revision=None,
        base_model_class=None,
    )  # fmt: skip


def _base(tmp_path: Path) -> Path:
    values = torch.randn((ROWS, WIDTH), generator=torch.Generator().manual_seed(0)) * 0.02
    bits = values.bfloat16().view(torch.int16).numpy().view(np.uint16)
    with ShardWriter(tmp_path, plan_shards([OutTensor("w", "BF16", (ROWS, WIDTH))], 10**9)) as out:
        out.write("w", bits)
    return tmp_path / "model.safetensors"


@pytest.mark.parametrize("kind", ["linear", "embedding", "fan_in_fan_out"])
@pytest.mark.parametrize("out_dtype", ["BF16", "F16", "F32"])
def test_blocks_give_the_whole_tensor_bytes(kind, out_dtype, tmp_path):
    path = _base(tmp_path)
    (info,) = list_tensors(path)
    generator = np.random.default_rng(1)
    transposed = kind != "linear"
    a_cols, b_rows = (ROWS, WIDTH) if transposed else (WIDTH, ROWS)
    adapter = {
        "A": generator.standard_normal((RANK, a_cols), dtype=np.float32) * 0.05,
        "B": generator.standard_normal((b_rows, RANK), dtype=np.float32) * 0.05,
    }
    edit = lora.ModuleEdit(
        "m", kind="embedding" if kind == "embedding" else "linear", lora_a="A", lora_b="B"
    )
    settings = _settings(kind == "fan_in_fan_out")
    factors = lora.lora_factors(edit, adapter.__getitem__, settings)

    with open(path, "rb") as handle:
        chunks = list(blocks.merged_rows(handle, info, out_dtype, factors))
        weight = to_float32(read_array(handle, info), "BF16")
    base = torch.from_numpy(weight.copy())  # merge_weight adds to its float32 input
    whole = from_float32(lora.merge_weight(weight, edit, adapter.__getitem__, settings), out_dtype)

    assert len(chunks) == 2
    assert np.concatenate(chunks).tobytes() == whole.tobytes()
    # torch: the same sum in float32, rounded by torch; at most one ulp apart
    delta = torch.from_numpy(adapter["B"]) @ torch.from_numpy(adapter["A"])
    expected = base + (delta.T if transposed else delta) * 2.0
    ours = torch.from_numpy(np.concatenate(chunks).view(whole.dtype))
    if out_dtype == "BF16":
        ours, expected = ours.view(torch.bfloat16), expected.bfloat16()
    else:
        expected = expected.to(ours.dtype)
    ulp = (ours.float() - expected.float()).abs() / expected.float().abs().clamp_min(1e-6)
    assert (ours == expected).float().mean() > 0.999 and ulp.max() < 2**-6
