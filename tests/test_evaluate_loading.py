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


def test_a_load_reports_the_memory_it_fills(tiny_llama_dir, monkeypatch):
    """A model's load (a minute and more at 4B on a CPU) reports progress while it runs:
    bytes filled of the model's size in the plan's dtype, from 0 to the whole, and the
    model it returns is the one ``load_model`` gives."""
    import torch

    from release.checkpoint.safetensors import parameter_counts
    from release.core import waiting
    from release.core.events import Progress
    from release.evaluate import loading

    class Recording:
        stage = "evaluate"

        def progress(self, done, total, unit, message=""):
            return Progress(self.stage, done, total, unit, message)

    monkeypatch.setattr(waiting, "WAIT_REPORT_S", 0.001)  # a tiny model loads in a blink
    run = loading.load_reporting(
        Recording(),
        "loading the base",
        tiny_llama_dir,
        LoadPlan("float32", 0),
        trust_remote_code=False,
    )
    events = []
    while True:
        try:
            events.append(next(run))
        except StopIteration as done:
            model = done.value
            break
    expected = parameter_counts(tiny_llama_dir)[0] * 4
    assert all(isinstance(e, Progress) and e.total == expected for e in events)
    assert events[0].done == 0 and events[-1].done == expected and len(events) >= 3
    assert all(0 <= e.done <= expected and e.unit == "bytes" for e in events)
    reference = load_model(tiny_llama_dir, LoadPlan("float32", 0), trust_remote_code=False)
    for ours, theirs in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(ours, theirs)
