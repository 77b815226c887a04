"""The built-in architectures beyond Llama (whose SmolLM2 test is in
test_gguf_llama_cpp.py) on tiny models: the same tensor bytes and header keys as
llama.cpp's converter, and llama.cpp runs our file and agrees with transformers."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest

from release.core.errors import StageError
from release.gguf.agreement import llama_cpp_check, reference_probe
from release.gguf.formats import FORMATS
from release.gguf.metadata import ReleaseMetadata
from release.gguf.writer import export_gguf, open_source
from tests.support.gguf_helpers import (
    gguf_context,
    llama_cpp_convert,
    make_confident,
    run_gguf_stage,
)

pytest_plugins = ("tests.support.gguf_fixtures",)

SHAPE_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "bos_token_id",
    "eos_token_id",
)


# Per architecture: its config name and what it needs beyond the tiny Llama's shape
# (Gemma 3 scales queries by query_pre_attn_scalar; llama.cpp by head_dim).
KINDS = {
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {}),
    "gemma3": ("gemma3_text", {"head_dim": 16, "query_pre_attn_scalar": 16}),
}


def _tiny(kind: str, tiny_llama_dir, path):
    """The tiny Llama's shape and tokenizer as architecture ``kind``, made confident the
    way confident_llama_dir is, with random norm weights so a norm offset shows."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    llama = json.loads((tiny_llama_dir / "config.json").read_text())
    model_type, extra = KINDS[kind]
    config = AutoConfig.for_model(model_type, **{key: llama[key] for key in SHAPE_KEYS}, **extra)
    torch.manual_seed(0)
    model = make_confident(AutoModelForCausalLM.from_config(config))
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if name.endswith("norm.weight"):
                weight.normal_(1.0 if kind != "gemma3" else 0.0, 0.1)
    model.to(torch.bfloat16).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(path)
    return path


def _export(kind: str, tiny_llama_dir, folder) -> tuple[Path, Path]:
    """(model folder, our f16 file) for a tiny model of architecture ``kind``."""
    model_dir = _tiny(kind, tiny_llama_dir, folder / "model")
    ours = folder / "ours.gguf"
    for _ in export_gguf(open_source(model_dir), ours, FORMATS["f16"], ReleaseMetadata("t", "1")):
        pass
    return model_dir, ours


@pytest.fixture(scope="module")
def qwen2(tiny_llama_dir, tmp_path_factory) -> tuple[Path, Path]:
    return _export("qwen2", tiny_llama_dir, tmp_path_factory.mktemp("qwen2"))


@pytest.fixture(scope="module", params=["qwen3", "gemma3"])
def matched(request, tiny_llama_dir, tmp_path_factory) -> tuple[str, Path, Path]:
    """Architectures whose tiny model llama.cpp's converter takes as it is."""
    kind = request.param
    return (kind, *_export(kind, tiny_llama_dir, tmp_path_factory.mktemp(kind)))


def test_runs_in_llama_cpp_and_agrees(matched):
    kind, model_dir, ours = matched
    assert gguf.GGUFReader(ours).get_field("general.architecture").contents() == kind
    result = llama_cpp_check(ours, reference_probe(model_dir))
    assert result.agreement.top1_agreement >= 0.99
    # the reference is now the checkpoint's dtype (bf16), as a release without the eval
    # computes it, not float32: qwen3 measured 0.109 (KL 1e-6, top-1 all)
    assert result.agreement.max_abs_diff < 0.15
    assert result.tokenizer_agrees is True


def test_matches_llama_cpp_converter(matched, converter_dir, tmp_path):
    """For a qwen2 folder, transformers swaps in Qwen2Tokenizer, which
    re-splits the SmolLM2 vocabulary our tiny model borrows, and llama.cpp's converter
    refuses its unknown pre-tokenizer hash (it hashes AutoTokenizer's output; we hash
    tokenizer.json's, which a real Qwen2 tokenizer's rebuild equals)."""
    kind, model_dir, ours = matched
    theirs = tmp_path / "theirs.gguf"
    llama_cpp_convert(converter_dir, model_dir, theirs, "f16")
    mine, reference = gguf.GGUFReader(ours), gguf.GGUFReader(theirs)
    reference_tensors = {t.name: t for t in reference.tensors}
    assert sorted(t.name for t in mine.tensors) == sorted(reference_tensors)
    assert "blk.0.attn_q_norm.weight" in reference_tensors
    for tensor in mine.tensors:
        other = reference_tensors[tensor.name]
        assert tensor.tensor_type == other.tensor_type, tensor.name
        assert tensor.data.tobytes() == other.data.tobytes(), tensor.name
    for key in reference.fields:
        if key.startswith((f"{kind}.", "tokenizer.")):
            assert mine.get_field(key).contents() == reference.get_field(key).contents(), key


def test_a_file_that_fails_a_check_never_gets_its_name(qwen2, tmp_path):
    """The qwen2 folder is a real failure: transformers' Qwen2Tokenizer splits text its
    own way over the borrowed SmolLM2 vocabulary, llama.cpp the tokenizer.json way. The
    stage must stop with that, and leave no GGUF behind. (Its logits checks come first
    and pass, so llama.cpp and transformers both ran our qwen2 file, biases and all.)"""
    model_dir, _ = qwen2
    ctx = gguf_context(model_dir, tmp_path, types=["f16"])
    with pytest.raises(StageError, match="tokenizes the probe prompts differently"):
        run_gguf_stage(ctx)
    assert list(ctx.out_dir.iterdir()) == []
