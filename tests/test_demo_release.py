"""The demo release end to end on the real SmolLM2-135M-Instruct and a LoRA really trained
with peft: the CLI runs every stage, and the results are checked against PEFT itself.

The workspace is built once for the session (tests/support/demo_fixtures.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from release.cli import main
from release.core.manifest import MANIFEST_NAME, Manifest
from tests.support.lora_models import load_folder, max_ulps, peft_merge

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(demo_release) -> Path:
    return demo_release


@pytest.fixture(scope="module")
def manifest(demo) -> Manifest:
    return Manifest.load(demo / "build" / MANIFEST_NAME)


def test_demo_spec_is_what_the_readme_promises(demo):
    spec = yaml.safe_load((demo / "release.yaml").read_text())
    assert spec["base"]["repo_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert spec["adapter"]["path"] == "adapter"
    assert {"f16", "q8_0"} <= set(spec["gguf"]["types"])


def test_our_merge_equals_peft_merge_and_unload(demo, smollm2_base_dir, tmp_path):
    reference = load_folder(peft_merge(smollm2_base_dir, demo / "adapter", tmp_path / "peft"))
    ours = load_folder(demo / "build" / "merge")
    base = load_folder(smollm2_base_dir)
    assert set(ours) == set(reference)
    for name, tensor in reference.items():
        assert ours[name].dtype == tensor.dtype == torch.bfloat16, name
        assert max_ulps(ours[name], tensor, base[name]) <= 1, name


def test_merged_checkpoint_is_self_describing(demo):
    merged = demo / "build" / "merge"
    config = json.loads((merged / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config
    assert (merged / "chat_template.jinja").read_text().startswith("{% for message in messages")
    assert not (merged / "README.md").exists()  # the base's card is never copied
    with safe_open(merged / "model.safetensors", "pt") as handle:
        assert handle.get_slice("model.embed_tokens.weight").get_shape() == [49152, 576]


def test_intake_facts_match_the_adapter(manifest):
    facts = manifest.stages["adapter"].facts
    assert facts["peft_type"] == "LORA"
    assert (facts["r"], facts["lora_alpha"]) == (8, 16)
    assert sorted(facts["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    assert facts["base_parameters"] == 134_515_008
    # r * (in + out) per adapted matrix, 7 matrices in each of 30 layers
    per_layer = 8 * ((576 + 576) * 2 + (576 + 192) * 2 + (576 + 1536) * 3)
    assert facts["trainable_parameters"] == 30 * per_layer


def test_sanity_eval_passed_and_recorded_its_numbers(manifest):
    facts = manifest.stages["evaluate"].facts
    equivalence = facts["equivalence"]
    assert equivalence["top1_agreement"] >= 0.95
    assert equivalence["relative_error"] < 0.25
    assert equivalence["adapter_effect"] > 0.1  # the trained adapter really moves the model
    perplexity = facts["perplexity"]
    assert perplexity["tokens"] > 500
    assert 1 < perplexity["base"] < 200
    assert perplexity["ratio"] < 1.5
    assert abs(perplexity["ratio"] - perplexity["merged"] / perplexity["base"]) < 1e-3
    assert "adapter" not in perplexity  # base + adapter's pass proved nothing the logits did not
    smoke = facts["smoke"]
    assert len(smoke) == 3 and all(item["passed"] for item in smoke)
    conversion = smoke[0]
    assert conversion["stop"] == "eos"
    assert "°F" in conversion["output"]  # the format the adapter was trained on
    assert facts["gate"]["passed"] is True


def test_rerun_skips_every_stage(demo, capsys):
    capsys.readouterr()
    assert main(["run", str(demo / "release.yaml")]) == 0
    out = capsys.readouterr().out
    assert "▶" not in out  # no stage started
    assert out.count("skipped (unchanged since") >= 4


def test_perturbed_base_is_stopped_by_intake(demo, smollm2_base_dir, tmp_path, capsys):
    """Same architecture, same shapes, other weights: the fingerprint recorded by the last
    release (v0.1.0) stops the merge before anything is written."""
    from safetensors.torch import load_file, save_file

    wrong = tmp_path / "wrong-base"
    shutil.copytree(smollm2_base_dir, wrong)
    tensors = load_file(wrong / "model.safetensors")
    name = "model.layers.0.self_attn.q_proj.weight"
    tensors[name] = tensors[name] + 0.01 * torch.randn_like(tensors[name])
    save_file(tensors, wrong / "model.safetensors", metadata={"format": "pt"})

    spec = yaml.safe_load((demo / "release.yaml").read_text())
    spec.update(version="0.2.0", workspace=str(tmp_path / "build"))
    spec["base"]["path"] = str(wrong)
    spec["adapter"]["path"] = str(demo / "adapter")
    spec["eval"] = {"previous": [str(demo / "build" / MANIFEST_NAME)]}
    (tmp_path / "release.yaml").write_text(yaml.safe_dump(spec))

    capsys.readouterr()
    assert main(["run", str(tmp_path / "release.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "HuggingFaceTB/SmolLM2-135M-Instruct" in err[0]
    assert "differ from the base of release v0.1.0" in err[0]
    assert not (tmp_path / "build" / "merge").exists()


def test_card_round_trips_through_huggingface_hub_with_every_score(demo):
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    from cards.evals import load_results
    from cards.lint import lint_file

    card_path = demo / "build" / "card" / "README.md"
    assert lint_file(card_path) == []
    card = ModelCard.load(card_path)
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.base_model_relation == "finetune"
    assert card.data.license == "apache-2.0"
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    stored = load_results([demo / "results" / "unit_conversions.yaml"])
    assert {(r.metric_type, r.metric_value) for r in results} == {
        (r.metric, r.value) for r in stored
    }
    assert "134.5M (134,515,008)" in card.text  # parameters, as intake counted them
    config = json.loads((demo / "build" / "merge" / "config.json").read_text())
    context, vocabulary = config["max_position_embeddings"], config["vocab_size"]
    assert f"| Context length | {context:,} tokens |" in card.text  # as the merge recorded
    assert f"| Vocabulary size | {vocabulary:,} |" in card.text
    gguf_card = ModelCard.load(demo / "build" / "card" / "gguf" / "README.md")
    assert gguf_card.data.base_model_relation == "quantized"


def test_gguf_files_load_in_llama_cpp_and_agree_with_the_merged_model(demo, manifest):
    import gguf

    files = {record["type"]: record for record in manifest.stages["gguf"].facts["files"]}
    assert {"f16", "q8_0", "q4_k_m"} <= set(files)  # CI installs llama-cpp-python
    for gguf_type in ("f16", "q8_0"):
        record = files[gguf_type]
        assert record["confident_top1_agreement"]["llama_cpp"] >= 0.99, record
        assert record["top1_agreement"]["llama_cpp"] >= 0.95, record
        assert record["tokenizer_agreement"] is True
    assert files["f16"]["top1_agreement"]["llama_cpp"] >= 0.99
    path = demo / "build" / "gguf" / files["q8_0"]["name"]
    assert path.stat().st_size == files["q8_0"]["bytes"]
    reader = gguf.GGUFReader(path)
    assert reader.get_field("general.architecture").contents() == "llama"
    assert "im_start" in reader.get_field("tokenizer.chat_template").contents()
