"""Gemma 4 through intake and the streaming merge: both checkpoint classes, LoRAs on the
language model and on the towers' clipped linears, against PEFT's merge_and_unload; the
files a Gemma 4 user needs kept; QLoRA bases and disagreeing stop tokens refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from release.cli import main
from release.core.events import Log
from tests.bnb_models import make_bnb_4bit
from tests.lora_models import peft_merge
from tests.test_merge import assert_same_tensors, release

CASES = {
    "text": "gemma4_text_dir",
    "language_model": "gemma4_multimodal_dir",
    "towers": "gemma4_multimodal_dir",
}
PLACED = {
    "text": "model 28",
    "language_model": "model.embed_vision 1, model.language_model 28",
    "towers": "model.audio_tower 3, model.language_model 28, model.vision_tower.encoder 3",
}
"""Where intake says each adapter's edits landed: 4 layers x 7 projections in the text
model; the towers' q/k/v ``.linear`` when the adapter reached them; the vision
embedder's modules_to_save copy."""
USER_FILES = [
    "chat_template.jinja",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
]
TOWER_FILES = ["processor_config.json", "preprocessor_config.json"]


@pytest.mark.parametrize("case", CASES)
def test_gemma4_merge_equals_peft(case, gemma4_adapters, request, tmp_path):
    base = request.getfixturevalue(CASES[case])
    adapter = gemma4_adapters[case]

    merged, events = release(base, adapter, tmp_path / "ws")

    reference = peft_merge(base, adapter, tmp_path / "peft")
    assert_same_tensors(merged, reference, base)
    placed = [e.message for e in events if isinstance(e, Log) and "placed on" in e.message]
    model_class = json.loads((base / "config.json").read_text())["architectures"][0]
    assert placed == [f"adapter modules placed on {model_class}'s checkpoint names: {PLACED[case]}"]
    wanted = USER_FILES + (TOWER_FILES if case != "text" else [])
    for name in wanted:
        assert (merged / name).read_bytes() == (base / name).read_bytes(), name


def test_merged_multimodal_folder_loads_its_processor_config(
    gemma4_adapters, gemma4_multimodal_dir, tmp_path
):
    """What AutoProcessor and llama.cpp's projector conversion read: the image
    normalisation and the audio features, as the base has them."""
    from transformers import AutoFeatureExtractor

    merged, _ = release(gemma4_multimodal_dir, gemma4_adapters["language_model"], tmp_path / "ws")

    image = json.loads((merged / "processor_config.json").read_text())["image_processor"]
    assert image["image_mean"] == [0.0, 0.0, 0.0] and image["image_std"] == [1.0, 1.0, 1.0]
    features = AutoFeatureExtractor.from_pretrained(merged)
    assert type(features).__name__ == "Gemma4AudioFeatureExtractor"


def _run(tmp_path: Path, base: Path, adapter: Path, capsys) -> tuple[int, str]:
    spec = tmp_path / "release.yaml"
    spec.write_text(
        f"name: tiny\nversion: 0.1.0\nbase:\n  path: {base}\nadapter:\n  path: {adapter}\n"
        f"workspace: {tmp_path / 'build'}\n"
    )
    capsys.readouterr()
    code = main(["run", str(spec), "--stage", "adapter", "--stage", "merge"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "this is a bug" not in err
    return code, err


@pytest.mark.parametrize("keep_config", [True, False], ids=["quantization_config", "packed-only"])
def test_a_qlora_base_is_never_merged(
    keep_config, gemma4_adapters, gemma4_multimodal_dir, tmp_path, capsys
):
    """A base in bitsandbytes' 4-bit format (with its quantization_config, or with it
    stripped and only the packed weights left) stops at intake, in one line that says
    what was found and what to do; nothing is merged."""
    base = make_bnb_4bit(gemma4_multimodal_dir, tmp_path / "bnb", keep_config=keep_config)

    code, err = _run(tmp_path, base, gemma4_adapters["language_model"], capsys)

    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    found = (
        "bitsandbytes 4-bit nf4" if keep_config else "28 weights are packed by bitsandbytes (nf4)"
    )
    assert found in err and "unquantized base" in err and "base.repo_id" in err
    assert not (tmp_path / "build" / "merge").exists()


def test_eos_disagreement_is_caught_at_intake(gemma4_adapters, gemma4_text_dir, tmp_path, capsys):
    """A trainer that set the tokenizer's EOS to the end-of-turn token but left
    generation_config's stop tokens without it: one line naming both values."""
    base = Path(shutil.copytree(gemma4_text_dir, tmp_path / "base"))
    generation = json.loads((base / "generation_config.json").read_text())
    generation["eos_token_id"] = 1
    (base / "generation_config.json").write_text(json.dumps(generation))
    tokenizer_config = json.loads((base / "tokenizer_config.json").read_text())
    tokenizer_config["eos_token"] = "<turn|>"
    (base / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))

    code, err = _run(tmp_path, base, gemma4_adapters["text"], capsys)

    assert code == 2
    first = err.strip().splitlines()[0]
    assert "eos_token '<turn|>' (id 6)" in first and "eos_token_id [1]" in first, err
