"""The merge a block of rows at a time gives the bytes of the whole-tensor formula, and
torch's float32 merge rounded by torch, on tensors larger than a read chunk; the delta
is the same bytes on every CPU's BLAS kernel, block size and thread count, equal to its
rule computed in exact Python arithmetic."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import subprocess
import sys
from fractions import Fraction
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

REPO = Path(__file__).resolve().parent.parent
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
    torch_dtype = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}[out_dtype]
    expected_bits = expected.to(torch_dtype).view(
        torch.int32 if out_dtype == "F32" else torch.int16
    )
    ulps = np.abs(_ordered(np.concatenate(chunks)) - _ordered(expected_bits.numpy()))
    assert out_dtype == "F32" or (ulps == 0).mean() > 0.999  # float32 shows BLAS's own error
    # one ulp apart, or, where W + delta cancels to near 0, within float32 BLAS's own error
    products = torch.from_numpy(np.abs(adapter["B"])) @ torch.from_numpy(np.abs(adapter["A"]))
    terms = base.abs() + (products.T if transposed else products) * 2.0
    ours_values = torch.from_numpy(np.concatenate(chunks).view(whole.dtype))
    ours_values = ours_values.view(torch_dtype) if out_dtype == "BF16" else ours_values
    gap = (ours_values.float() - expected.to(torch_dtype).float()).abs()
    assert bool(((ulps <= 1) | (gap <= 2.0**-20 * terms).numpy()).all())


def _ordered(values: np.ndarray) -> np.ndarray:
    """Float bits as integers whose difference counts the ulps between the floats."""
    bits = values.view(np.int32 if values.itemsize == 4 else np.int16).astype(np.int64)
    magnitude = bits & (2 ** (8 * values.itemsize - 1) - 1)
    return np.where(bits < 0, -magnitude, magnitude)


def _exponent(peak: Fraction) -> int:
    """The e with 2**(e - 1) <= peak < 2**e (0 for 0)."""
    exponent = 0
    while peak and Fraction(2) ** exponent <= peak:
        exponent += 1
    while peak and Fraction(2) ** (exponent - 1) > peak:
        exponent -= 1
    return exponent


def _on_grid_exactly(line: list[Fraction], bits: int) -> list[Fraction]:
    """The documented grid, in exact arithmetic: steps of 2**(e - bits), 2**e the first
    power of two above the line's largest magnitude; round to nearest, ties to even."""
    step = Fraction(2) ** (_exponent(max(abs(value) for value in line)) - bits)
    return [round(value / step) * step for value in line]


def _reference_rows(a, b, scale, rows, transposed):
    """Rows of the delta computed in exact Python arithmetic: the factors on their grid,
    the product exact, times the scale rounded to float64, then to float32."""
    rank = a.shape[0]
    bits = (53 - math.ceil(math.log2(rank))) // 2
    # balanced: rank k's row of A and column of B scaled by 2**-shift, 2**shift
    for k in range(rank):
        peak_a = _exponent(Fraction(float(np.abs(a[k]).max())))
        peak_b = _exponent(Fraction(float(np.abs(b[:, k]).max())))
        shift = (peak_a - peak_b) // 2
        a, b = a.astype(np.float64), b.astype(np.float64)
        a[k] *= 2.0**-shift
        b[:, k] *= 2.0**shift

    def grid(line: np.ndarray) -> list[Fraction]:
        return _on_grid_exactly([Fraction(float(value)) for value in line], bits)

    columns = [grid(column) for column in a.T]
    out = []
    for row in rows:
        if transposed:  # row `row` of (B @ A).T: column `row` of A against every row of B
            pairs = [(grid(line), columns[row]) for line in b]
        else:
            pairs = [(grid(b[row]), column) for column in columns]
        exact = [sum((x * y for x, y in zip(*pair, strict=True)), Fraction(0)) for pair in pairs]
        out.append([np.float32(float(value * Fraction(scale))) for value in exact])
    return np.array(out, dtype=np.float32)


def _spread_factors(rank: int, rows: int, width: int, seed: int):
    """LoRA factors whose values span a few orders of magnitude, as trained ones do."""
    generator = np.random.default_rng(seed)
    spread = lambda shape: (  # noqa: E731
        generator.standard_normal(shape) * 2.0 ** generator.integers(-12, 3, shape)
    ).astype(np.float32)
    return spread((rank, width)), spread((rows, rank))


@pytest.mark.parametrize("rank", [1, 8, 64, 600])
@pytest.mark.parametrize("transposed", [False, True])
def test_delta_is_the_exact_arithmetic_of_the_documented_grid(rank, transposed):
    rows, width = 40, 24
    a, b = _spread_factors(rank, width if transposed else rows, rows if transposed else width, rank)
    settings = dataclasses.replace(_settings(False), r=rank, alpha=0.75 * rank)
    edit = lora.ModuleEdit(
        "m", kind="embedding" if transposed else "linear", lora_a="A", lora_b="B"
    )
    picked = [0, 17, rows - 1]

    def delta(a, b):
        factors = lora.lora_factors(edit, {"A": a, "B": b}.__getitem__, settings)
        return np.stack([factors.delta_rows(row, row + 1)[0] for row in picked])

    ours = delta(a, b)
    assert ours.tobytes() == _reference_rows(a, b, 0.75, picked, transposed).tobytes()
    # on factors as trained (each rank's scale its own) the grid costs about what float32
    # arithmetic does: against the exact product
    generator = np.random.default_rng(rank)
    a = generator.standard_normal(a.shape) * 2.0 ** generator.integers(-4, 4, (rank, 1))
    b = generator.standard_normal(b.shape) * 2.0 ** generator.integers(-12, -4, (1, rank))
    a, b = a.astype(np.float32), b.astype(np.float32)
    ours = delta(a, b)
    exact = (b.astype(np.float64) @ a.astype(np.float64)) * 0.75
    exact = (exact.T if transposed else exact)[picked]
    terms = (np.abs(b).astype(np.float64) @ np.abs(a).astype(np.float64)) * 0.75
    terms = (terms.T if transposed else terms)[picked]
    assert np.all(np.abs(ours - exact) <= 2.0**-20 * terms + np.abs(np.spacing(np.float32(exact))))


_CHILD = """
import hashlib, sys
from pathlib import Path
import numpy as np
import torch
from release.checkpoint.safetensors import list_tensors
from release.merge import blocks, lora
torch.set_num_threads(int(sys.argv[3]))
blocks.BLOCK_BYTES = int(sys.argv[2])
blocks.READ_BYTES = 4 * int(sys.argv[2])
(info,) = list_tensors(Path(sys.argv[1]))
adapter = dict(np.load(sys.argv[1] + ".npz"))
edit = lora.ModuleEdit("m", kind="linear", lora_a="A", lora_b="B")
settings = lora.LoraSettings(
    r=16, alpha=32, dropout=0.0, use_rslora=False, use_dora=False, fan_in_fan_out=False,
    target_modules=[], modules_to_save=[], rank_pattern={}, alpha_pattern={},
    base_model_name_or_path=None, revision=None, base_model_class=None,
)
factors = lora.lora_factors(edit, adapter.__getitem__, settings)
with open(sys.argv[1], "rb") as handle:
    merged = np.concatenate(list(blocks.merged_rows(handle, info, "BF16", factors)))
print(hashlib.sha256(merged.tobytes()).hexdigest())
"""


def test_the_same_bytes_on_every_blas_kernel_block_and_thread_count(tmp_path):
    """BLAS kernels of older and newer x86-64 CPUs (OpenBLAS's DYNAMIC_ARCH core types:
    a float32 product differs between them), with 1 or 2 BLAS and torch threads and
    blocks of 4 KiB to 1 MiB: one set of bytes, equal to the exact reference's rows."""
    path = _base(tmp_path)
    a, b = _spread_factors(16, ROWS, WIDTH, 2)
    np.savez(f"{path}.npz", A=a, B=b)
    runs = [
        ("Prescott", 4096, 1), ("Sandybridge", 65536, 2), ("Haswell", 2**20, 2),
        ("Haswell", 4096, 1), ("", 65536, 2),
    ]  # fmt: skip
    digests = set()
    for coretype, block, threads in runs:
        env = {**os.environ, "OPENBLAS_CORETYPE": coretype, "OPENBLAS_NUM_THREADS": str(threads)}
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(block), str(threads)],
            env=env, capture_output=True, text=True, cwd=REPO,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        digests.add(done.stdout.strip())
    assert len(digests) == 1

    (info,) = list_tensors(path)
    with open(path, "rb") as handle:
        weight = to_float32(read_array(handle, info), "BF16")
        factors = lora.lora_factors(
            lora.ModuleEdit("m", kind="linear", lora_a="A", lora_b="B"),
            {"A": a, "B": b}.__getitem__,
            dataclasses.replace(_settings(False), r=16, alpha=32),
        )
        merged = np.concatenate(list(blocks.merged_rows(handle, info, "BF16", factors)))
    assert hashlib.sha256(merged.tobytes()).hexdigest() in digests
    picked = [0, 2047, ROWS - 1]
    delta = _reference_rows(a, b, 2.0, picked, transposed=False)
    sums = [
        [np.float32(float(w) + float(d)) for w, d in zip(weight[row], delta[i], strict=True)]
        for i, row in enumerate(picked)
    ]
    expected = torch.from_numpy(np.array(sums, dtype=np.float32)).bfloat16()
    assert merged[picked].tobytes() == expected.view(torch.int16).numpy().tobytes()
