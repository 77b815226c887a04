"""GGUF size estimates against files that gguf-py writes."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from release.gguf_sizes import bits_per_weight, estimate_gguf_bytes
from release.spec import GGUF_TYPES


def test_every_spec_type_has_an_estimate():
    sizes = estimate_gguf_bytes(1_000_000, GGUF_TYPES)
    assert list(sizes) == list(GGUF_TYPES)
    assert sizes["f32"] == 4_000_000
    assert sizes["f16"] == sizes["bf16"] == 2_000_000
    assert sizes["q8_0"] == 1_062_500  # 34 bytes per block of 32
    assert sizes["q4_k_m"] == 562_500  # 144 bytes per block of 256
    ordered = [sizes[t] for t in ("f32", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q2_k")]
    assert ordered == sorted(ordered, reverse=True)


@pytest.mark.parametrize(("gguf_type", "qtype"), [("q8_0", "Q8_0"), ("f16", "F16")])
def test_estimate_matches_a_file_written_by_gguf_py(tmp_path, gguf_type, qtype):
    weights = np.random.default_rng(0).standard_normal((256, 1024)).astype(np.float32)
    kind = gguf.GGMLQuantizationType[qtype]
    data = gguf.quants.quantize(weights, kind)
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("blk.0.ffn_up.weight", data, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    estimate = estimate_gguf_bytes(weights.size, [gguf_type])[gguf_type]
    assert estimate <= path.stat().st_size <= estimate + 1024  # header and alignment
    assert bits_per_weight(gguf_type) == pytest.approx(estimate * 8 / weights.size)
