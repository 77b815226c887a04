"""Gemma 4 through intake and the streaming merge: both checkpoint classes, LoRAs on the
language model and on the towers' clipped linears, against PEFT's merge_and_unload; the
files a Gemma 4 user needs kept; the MoE form (26B-A4B's layout); QLoRA bases refused or,
when the spec asks, dequantized; disagreeing stop tokens refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from release.cli import main
from release.core.events import Log
from tests.support.bnb_models import make_bnb_4bit
from tests.support.disk_fixtures import tmpfs
from tests.support.lora_models import peft_merge
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


def _run(
    tmp_path: Path, base: Path, adapter: Path, capsys, base_keys: str = "", card: bool = False
) -> tuple[int, str, str]:
    """Intake and merge of ``base`` + ``adapter`` through the CLI (with ``card``, every
    stage to the card, the sanity eval and GGUF off); the exit code, stderr and stdout."""
    spec = tmp_path / "release.yaml"
    spec.write_text(
        f"name: tiny\nversion: 0.1.0\nbase:\n  path: {base}\n{base_keys}"
        f"adapter:\n  path: {adapter}\nworkspace: {tmp_path / 'build'}\n"
        + ("eval:\n  enabled: false\ngguf:\n  types: []\n" if card else "")
    )
    capsys.readouterr()
    stages = ["--stage", "adapter", "--stage", "merge"]
    code = main(["run", str(spec), *([] if card else stages)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "this is a bug" not in err
    return code, err, out


@pytest.mark.parametrize("keep_config", [True, False], ids=["quantization_config", "packed-only"])
def test_a_qlora_base_is_never_merged(
    keep_config, gemma4_adapters, gemma4_multimodal_dir, tmp_path, capsys
):
    """A base in bitsandbytes' 4-bit format (with its quantization_config, or with it
    stripped and only the packed weights left) stops at intake, in one line that says
    what was found and what to do; nothing is merged."""
    base = make_bnb_4bit(gemma4_multimodal_dir, tmp_path / "bnb", keep_config=keep_config)

    code, err, _ = _run(tmp_path, base, gemma4_adapters["language_model"], capsys)

    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    found = (
        "bitsandbytes 4-bit nf4" if keep_config else "28 weights are packed by bitsandbytes (nf4)"
    )
    assert found in err and "unquantized base" in err and "base.repo_id" in err
    assert "base.dequantize: true" in err  # the other way out, with its cost
    assert not (tmp_path / "build" / "merge").exists()


def test_no_room_for_the_dequantized_base_is_said_before_a_byte(
    gemma4_adapters, gemma4_multimodal_dir, tmp_path, capsys
):
    """The dequantized copy is as big as the full-precision base: on a disk without room
    for it (a real 4 MB tmpfs), intake stops in one line with both numbers, exit 1."""
    base = make_bnb_4bit(gemma4_multimodal_dir, tmp_path / "bnb")
    adapter = gemma4_adapters["language_model"]
    with tmpfs(tmp_path / "disk", "4m") as disk:
        code, err, _ = _run(disk, base, adapter, capsys, "  dequantize: true\n")

        assert code == 1 and len(err.strip().splitlines()) == 1, err
        assert "not enough disk space" in err and "the dequantized base needs" in err
        assert not (disk / "build" / "adapter").exists()


def test_dequantize_reads_bitsandbytes_4bit_only(
    gemma4_adapters, gemma4_text_dir, tmp_path, capsys
):
    """A GPTQ base is refused even with base.dequantize: one line saying what it reads."""
    base = Path(shutil.copytree(gemma4_text_dir, tmp_path / "gptq"))
    config = json.loads((base / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (base / "config.json").write_text(json.dumps(config))

    code, err, _ = _run(tmp_path, base, gemma4_adapters["text"], capsys, "  dequantize: true\n")

    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "quantization_config (gptq)" in err and "bitsandbytes 4-bit (nf4, fp4)" in err
    assert not (tmp_path / "build" / "adapter").exists()


def test_a_qlora_base_merges_dequantized_when_the_spec_asks(
    gemma4_adapters, gemma4_multimodal_dir, tmp_path, capsys
):
    """base.dequantize: true: intake writes the 4-bit base dequantized (its weights as
    bitsandbytes computes them, tests/test_dequantize.py) with a warning that the merge
    differs from one onto the full-precision base; the merge equals PEFT's
    merge_and_unload onto that base; the card carries the warning."""
    base = make_bnb_4bit(gemma4_multimodal_dir, tmp_path / "bnb")
    adapter = gemma4_adapters["language_model"]

    code, err, out = _run(tmp_path, base, adapter, capsys, "  dequantize: true\n", card=True)

    assert code == 0, err
    log = " ".join(out.split())  # the console wraps long lines
    warning = "merging onto its weights dequantized, as base.dequantize asks"
    assert warning in log and "bitsandbytes 4-bit nf4" in log
    assert "differs from one onto the full-precision base" in log
    dequantized = tmp_path / "build" / "adapter" / "base-dequantized"
    reference = peft_merge(dequantized, adapter, tmp_path / "peft")
    assert_same_tensors(tmp_path / "build" / "merge", reference, dequantized)
    merged_config = json.loads((tmp_path / "build" / "merge" / "config.json").read_text())
    assert "quantization_config" not in merged_config
    card = (tmp_path / "build" / "card" / "README.md").read_text()
    assert "| QLoRA (4-bit base) | yes |" in card
    assert "dequantized as its release asked (`base.dequantize`)" in card
    assert "differs from the adapter merged onto the full-precision base" in card


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

    code, err, _ = _run(tmp_path, base, gemma4_adapters["text"], capsys)

    assert code == 2
    first = err.strip().splitlines()[0]
    assert "eos_token '<turn|>' (id 6)" in first and "eos_token_id [1]" in first, err


def test_gemma4_moe_merges_as_peft(gemma4_moe_dir, gemma4_adapters, tmp_path):
    """A LoRA on the projections of the MoE form (attention and the dense MLP; PEFT's
    target_modules do not reach the 3-D experts): merged equal to merge_and_unload, the
    router and experts copied as they were."""
    from tests.support.gemma4_models import MOE

    adapter = gemma4_adapters["moe"]

    merged, _ = release(gemma4_moe_dir, adapter, tmp_path / "ws")

    assert_same_tensors(
        merged, peft_merge(gemma4_moe_dir, adapter, tmp_path / "peft"), gemma4_moe_dir
    )
    config = json.loads((merged / "config.json").read_text())
    assert {key: config.get(key) for key in MOE} == MOE


def test_a_lora_on_the_experts_is_refused_in_one_line(gemma4_moe_dir, tmp_path, capsys):
    """PEFT's target_parameters (a LoRA on the experts' 3-D parameters) is not merged by
    the streaming merge: intake says so and how to merge it instead."""
    from tests.support.gemma4_models import PROJECTIONS
    from tests.support.lora_models import make_adapter

    experts = ["experts.gate_up_proj", "experts.down_proj"]
    adapter = make_adapter(
        gemma4_moe_dir, tmp_path / "adapter", target_modules=PROJECTIONS, target_parameters=experts
    )

    code, err, _ = _run(tmp_path, gemma4_moe_dir, adapter, capsys)

    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "target_parameters" in err and "merge_and_unload" in err
