"""Every built-in architecture against llama.cpp's converter on a tiny model: the same
tensor bytes and header keys, and llama.cpp runs our file and agrees with transformers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import gguf
import pytest

from release.gguf_export.agreement import llama_cpp_check, reference_probe
from release.gguf_export.formats import FORMATS
from release.gguf_export.metadata import ReleaseMetadata
from release.gguf_export.writer import export_gguf, open_source
from tests.gguf_fixtures import make_confident

pytest_plugins = ("tests.gguf_fixtures",)

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


def _tiny(kind: str, tiny_llama_dir, path):
    """The tiny Llama's shape and tokenizer as architecture ``kind``, made confident the
    way confident_llama_dir is."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    llama = json.loads((tiny_llama_dir / "config.json").read_text())
    config = AutoConfig.for_model(
        kind, **{key: llama[key] for key in SHAPE_KEYS}, tie_word_embeddings=False
    )
    torch.manual_seed(0)
    model = make_confident(AutoModelForCausalLM.from_config(config))
    model.to(torch.bfloat16).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=["qwen2", "qwen3"])
def exported(request, tiny_llama_dir, tmp_path_factory):
    """(architecture, model folder, our f16 file)."""
    folder = tmp_path_factory.mktemp(request.param)
    model_dir = _tiny(request.param, tiny_llama_dir, folder / "model")
    ours = folder / "ours.gguf"
    for _ in export_gguf(open_source(model_dir), ours, FORMATS["f16"], ReleaseMetadata("t", "1")):
        pass
    return request.param, model_dir, ours


def test_llama_cpp_runs_our_file_and_agrees(exported):
    kind, model_dir, ours = exported
    assert gguf.GGUFReader(ours).get_field("general.architecture").contents() == kind
    result = llama_cpp_check(ours, model_dir, reference_probe(model_dir))
    assert result.agreement.top1_agreement >= 0.99
    # The borrowed SmolLM2 vocabulary under transformers' Qwen2Tokenizer splits text its
    # own way (see below): the stage's tokenizer check catches exactly that.
    assert result.tokenizer_agrees is (kind != "qwen2")


def test_matches_llama_cpp_converter(exported, converter_dir, tmp_path):
    """qwen3 only: for a qwen2 folder, transformers swaps in Qwen2Tokenizer, which
    re-splits the SmolLM2 vocabulary our tiny model borrows, and llama.cpp's converter
    refuses its unknown pre-tokenizer hash (it hashes AutoTokenizer's output; we hash
    tokenizer.json's, which a real Qwen2 tokenizer's rebuild equals)."""
    kind, model_dir, ours = exported
    if kind != "qwen3":
        return
    theirs = tmp_path / "theirs.gguf"
    subprocess.run(
        [
            sys.executable,
            str(converter_dir / "convert_hf_to_gguf.py"),
            str(model_dir),
            "--outtype",
            "f16",
            "--outfile",
            str(theirs),
        ],
        env={**os.environ, "PYTHONPATH": str(converter_dir)},
        check=True,
        capture_output=True,
    )
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
