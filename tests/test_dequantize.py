"""bitsandbytes 4-bit weights dequantized without bitsandbytes, checked against what
bitsandbytes' own dequantize_4bit returned for weights it quantized itself
(tests/bnb_samples/, written by write_samples.py there): NF4 and FP4, with and without
double quantization of the scales."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from release.checkpoint.dequantize import (
    dequantize,
    dequantize_checkpoint,
    dequantize_needs,
    packed_4bit,
    state_tensors,
)
from release.checkpoint.safetensors import (
    from_float32,
    list_checkpoint,
    list_tensors,
    read_array,
    to_float32,
)
from tests.support.bnb_models import make_bnb_4bit

SAMPLES = sorted((Path(__file__).parent / "bnb_samples").glob("*.safetensors"))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.stem)
def test_bit_for_bit_what_bitsandbytes_dequantizes(sample):
    tensors = {info.name: info for info in list_tensors(sample)}
    packed = packed_4bit(tensors)
    assert list(packed) == ["proj.weight"]
    ours = from_float32(dequantize(packed["proj.weight"]), "BF16")
    with open(sample, "rb") as handle:
        theirs = read_array(handle, tensors["expected.proj.weight"])
    assert ours.shape == theirs.shape == (48, 64)
    assert np.array_equal(ours, theirs)
    assert state_tensors(packed) == set(tensors) - {"proj.weight", "expected.proj.weight"}


def test_a_4bit_checkpoint_becomes_plain_weights(gemma4_text_dir, tmp_path):
    """The tiny Gemma 4 in bitsandbytes' 4-bit format (tests/support/bnb_models.py): every weight
    back at its shape and dtype, each within its block's NF4 step of the original; the
    quant states and the quantization_config gone; the other files copied."""
    base = make_bnb_4bit(gemma4_text_dir, tmp_path / "bnb")
    out = tmp_path / "dequantized"
    planned = dequantize_needs(base).output_bytes
    steps = dequantize_checkpoint(base, out)
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            count = stop.value
            break

    original, written = list_checkpoint(gemma4_text_dir), list_checkpoint(out)
    assert count == 28 and sorted(written) == sorted(original)
    for name, info in original.items():
        assert (written[name].dtype, written[name].shape) == (info.dtype, info.shape), name
        with open(info.file, "rb") as a, open(written[name].file, "rb") as b:
            before = to_float32(read_array(a, info), info.dtype)
            after = to_float32(read_array(b, written[name]), info.dtype)
        if not name.endswith("_proj.weight"):
            assert np.array_equal(before, after), name
            continue
        blocks = before.reshape(-1, 64)
        step = np.abs(blocks).max(axis=1, keepdims=True) * 0.16  # NF4's widest gap / 2
        assert (np.abs(after.reshape(-1, 64) - blocks) <= step + 1e-6).all(), name
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    written_bytes = sum(path.stat().st_size for path in out.iterdir())
    assert 1 <= planned / written_bytes < 1.02  # the preflight's estimate, never under
    for name in ("tokenizer.json", "generation_config.json", "chat_template.jinja"):
        assert (out / name).read_bytes() == (base / name).read_bytes()
