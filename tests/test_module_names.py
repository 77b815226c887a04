"""Intake places an adapter's parameters on the checkpoint's names without building the
model: checked against transformers' own load-time renaming (``class_mapping``, what
``from_pretrained`` does) on real checkpoints of the layouts we meet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from release.checkpoint.safetensors import list_checkpoint, list_tensors
from release.merge import lora
from release.merge.class_names import class_mapping
from release.merge.module_names import map_by_names, parameter_to_checkpoint


def _wanted(adapter: Path) -> set[str]:
    weights = adapter / lora.WEIGHTS_NAME
    return set(lora.group_edits([info.name for info in list_tensors(weights)], weights))


def _bare(base: Path, folder: Path) -> Path:
    """``base`` as saved from the bare text model: no ``model.`` before its names."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(base, folder)
    tensors = load_file(folder / "model.safetensors")
    renamed = {name.removeprefix("model."): tensor for name, tensor in tensors.items()}
    save_file(renamed, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.mark.parametrize(
    ("base", "adapter"),
    [
        ("llama", "llama"),
        ("llama-bare", "llama"),
        ("gemma4_text", "text"),
        ("gemma4_multimodal", "language_model"),
        ("gemma4_multimodal", "towers"),
    ],
)
def test_names_alone_place_what_transformers_places(
    base, adapter, tiny_llama_dir, tiny_adapter, gemma4_adapters, request, tmp_path
):
    if base == "llama":
        folder = tiny_llama_dir
    elif base == "llama-bare":
        folder = _bare(tiny_llama_dir, tmp_path / "bare")
    else:
        folder = request.getfixturevalue(f"{base}_dir")
    adapter_dir = tiny_adapter if adapter == "llama" else gemma4_adapters[adapter]
    names, wanted = list(list_checkpoint(folder)), _wanted(adapter_dir)

    ours = map_by_names(names, wanted)

    theirs, _ = class_mapping(folder, names, wanted)
    assert ours == theirs and len(ours) == len(wanted)
    if base == "llama-bare":
        assert all(not target.startswith("model.") for target in ours.values())


def test_a_legacy_name_is_asked_of_transformers(tmp_path):
    """Old checkpoints name LayerNorm weights ``gamma``; only transformers' renaming knows
    that, so names alone leave it and the child process places it."""
    from safetensors.torch import load_file, save_file
    from transformers import BertConfig, BertLMHeadModel

    config = BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, is_decoder=True,
    )  # fmt: skip
    BertLMHeadModel(config).save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    legacy = {name.replace("LayerNorm.weight", "LayerNorm.gamma"): t for name, t in tensors.items()}
    save_file(legacy, tmp_path / "model.safetensors", metadata={"format": "pt"})
    names = list(list_checkpoint(tmp_path))
    wanted = {
        "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
    }
    assert map_by_names(names, wanted) == {
        "bert.encoder.layer.0.attention.self.query.weight": (
            "bert.encoder.layer.0.attention.self.query.weight"
        )
    }

    placed = parameter_to_checkpoint(
        tmp_path, json.loads((tmp_path / "config.json").read_text()), names, wanted
    )

    assert placed.targets["bert.embeddings.LayerNorm.weight"] == "bert.embeddings.LayerNorm.gamma"
    assert placed.model_class == "BertLMHeadModel" and len(placed.targets) == 2


def test_one_prefix_for_all_and_no_guess_between_two():
    """The rewrite that places the most is applied to all; between two that place as
    much, none is picked (the caller then asks transformers, or reports it)."""
    names = ["a.layers.0.q.weight", "b.layers.0.q.weight"]
    assert map_by_names(names, {"layers.0.q.weight"}) == {}
    wanted = {"layers.0.q.weight", "norm.weight"}
    assert map_by_names([*names, "a.norm.weight"], wanted) == {
        "layers.0.q.weight": "a.layers.0.q.weight",
        "norm.weight": "a.norm.weight",
    }


def test_only_wrappers_change():
    """A rewrite adds, drops or reorders wrapper components; it never turns a layer the
    base lacks into one it has, nor one tower's module into another's."""
    names = ["model.layers.0.q.weight", "model.layers.1.q.weight", "model.audio.proj.weight"]
    assert map_by_names(names, {"model.layers.7.q.weight", "model.vision.proj.weight"}) == {}
    legacy = ["language_model.model.layers.0.q.weight", "language_model.lm_head.weight"]
    assert map_by_names(legacy, {"model.language_model.layers.0.q.weight"}) == {
        "model.language_model.layers.0.q.weight": "language_model.model.layers.0.q.weight"
    }
