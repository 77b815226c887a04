"""A bf16 checkpoint loaded into float32 by the sanity eval (read, not mapped) is the
model transformers' own float32 load gives: every parameter and buffer (the
non-persistent ones computed at init included) and the logits, bit for bit."""

from __future__ import annotations

from pathlib import Path

import pytest

from release.evaluate.loading import LoadPlan, checkpoint_dtype, load_model


def _transformers_float32(model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


@pytest.mark.parametrize("fixture", ["tiny_llama_dir", "gemma4_text_dir", "gemma4_multimodal_dir"])
def test_a_bf16_checkpoint_loads_into_float32_as_transformers_loads_it(request, fixture):
    import torch
    from safetensors import safe_open
    from transformers import modeling_utils

    model_dir = request.getfixturevalue(fixture)
    assert checkpoint_dtype(model_dir) == "bfloat16"
    ours = load_model(model_dir, LoadPlan("float32", 0), trust_remote_code=False)
    assert modeling_utils.safe_open is safe_open  # the mapped reader is back for other loads
    theirs = _transformers_float32(model_dir)

    for kind in ("named_parameters", "named_buffers"):
        our_tensors = dict(getattr(ours, kind)())
        their_tensors = dict(getattr(theirs, kind)())
        assert our_tensors.keys() == their_tensors.keys()
        for name, tensor in their_tensors.items():
            assert our_tensors[name].dtype == tensor.dtype, name
            assert torch.equal(our_tensors[name], tensor), name
    assert {p.dtype for p in ours.parameters()} == {torch.float32}

    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, theirs(ids).logits)
