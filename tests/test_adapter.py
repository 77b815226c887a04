"""Adapter intake: facts, refusals, and a wrong base caught before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from release.checkpoint.fingerprint import base_fingerprint
from release.checkpoint.safetensors import list_checkpoint
from release.core.errors import InputError
from release.core.events import StageFinished
from release.core.manifest import MANIFEST_NAME
from release.runner import run_release
from release.spec.schema import ReleaseSpec
from tests.support.lora_models import load_folder, make_adapter

TARGETS = ["q_proj", "v_proj", "gate_proj", "down_proj"]


def make_spec(base_dir: Path, adapter_dir: Path, workspace: Path, **extra) -> ReleaseSpec:
    data = {"name": "tiny", "version": "1.3", "workspace": str(workspace)}
    base_section = {"path": str(base_dir), **extra.pop("base", {})}
    adapter_section = {"path": str(adapter_dir), **extra.pop("adapter", {})}
    return ReleaseSpec.model_validate(
        {**data, "base": base_section, "adapter": adapter_section, **extra}
    )


def intake(spec: ReleaseSpec) -> dict:
    events = list(run_release(spec, only=["adapter"]))
    return next(e.facts for e in events if isinstance(e, StageFinished))


def assert_refused_cleanly(spec: ReleaseSpec, *needles: str) -> InputError:
    """Fails with one line naming what it must, and leaves no stage output behind."""
    with pytest.raises(InputError) as caught:
        list(run_release(spec, only=["adapter", "merge"]))
    message = str(caught.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    workspace = spec.workspace
    assert not (workspace / "adapter").exists() and not (workspace / "merge").exists()
    assert not list(workspace.glob(".partial-*"))
    manifest = workspace / MANIFEST_NAME
    assert not manifest.exists() or json.loads(manifest.read_text())["stages"] == {}
    return caught.value


@pytest.fixture(scope="module")
def adapter_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    return make_adapter(
        tiny_llama_dir,
        tmp_path_factory.mktemp("adapter"),
        target_modules=TARGETS,
        r=8,
        lora_alpha=16,
        lora_dropout=0.05,
        use_rslora=True,
        modules_to_save=["lm_head"],
    )


@pytest.fixture(scope="module")
def twin_base_dir(tiny_llama_dir, tmp_path_factory, smollm2_tokenizer_dir) -> Path:
    """Same architecture and shapes as tiny_llama_dir, other weights."""
    from transformers import AutoTokenizer

    from tests.support.models import make_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    return make_tiny_llama(tmp_path_factory.mktemp("twin"), tokenizer, seed=7)


def test_facts_are_measured(tiny_llama_dir, adapter_dir, tmp_path):
    from peft import PeftModel

    facts = intake(make_spec(tiny_llama_dir, adapter_dir, tmp_path / "ws"))

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    assert facts["base_parameters"] == model.num_parameters()
    peft_model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert facts["trainable_parameters"] == trainable
    assert facts["base_dtype"] == "bfloat16"
    assert (facts["peft_type"], facts["r"], facts["lora_alpha"]) == ("LORA", 8, 16.0)
    assert (facts["lora_dropout"], facts["use_rslora"], facts["use_dora"]) == (0.05, True, False)
    assert facts["target_modules"] == sorted(TARGETS)
    assert facts["modules_to_save"] == ["lm_head"]
    assert facts["adapter_bytes"] == (adapter_dir / "adapter_model.safetensors").stat().st_size
    assert facts["base_fingerprint"] == base_fingerprint(list_checkpoint(tiny_llama_dir))
    intake_dir = tmp_path / "ws" / "adapter"
    targets = json.loads((intake_dir / "targets.json").read_text())
    assert targets["model.layers.1.mlp.down_proj.weight"] == "model.layers.1.mlp.down_proj.weight"
    assert targets["lm_head.weight"] == "lm_head.weight"


def test_fingerprint_follows_weights_not_shards(tiny_llama_dir, twin_base_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16)
    model.save_pretrained(tmp_path / "resharded", max_shard_size="2MB")
    assert len(list((tmp_path / "resharded").glob("*.safetensors"))) > 1
    fingerprint = base_fingerprint(list_checkpoint(tiny_llama_dir))
    assert base_fingerprint(list_checkpoint(tmp_path / "resharded")) == fingerprint
    assert base_fingerprint(list_checkpoint(twin_base_dir)) != fingerprint
    with torch.no_grad():  # one weight nudged in one layer is enough
        model.model.layers[1].mlp.up_proj.weight.mul_(1.01)
    model.save_pretrained(tmp_path / "nudged")
    assert base_fingerprint(list_checkpoint(tmp_path / "nudged")) != fingerprint


def test_wrong_base_shapes(tiny_llama_dir, adapter_dir, smollm2_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    from tests.support.models import make_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    narrow = make_tiny_llama(tmp_path / "narrow", tokenizer, head_dim=8)  # q_proj: 64 -> 32
    spec = make_spec(narrow, adapter_dir, tmp_path / "ws")
    assert_refused_cleanly(spec, str(narrow), str(adapter_dir), "q_proj", "[32, 64]")


def test_same_shapes_other_weights_against_spec_fingerprint(
    tiny_llama_dir, twin_base_dir, adapter_dir, tmp_path
):
    expected = base_fingerprint(list_checkpoint(tiny_llama_dir))
    spec = make_spec(twin_base_dir, adapter_dir, tmp_path / "ws", base={"fingerprint": expected})
    assert_refused_cleanly(spec, str(twin_base_dir), str(adapter_dir), "differ", expected[:16])


def test_same_shapes_other_weights_against_previous_release(
    tiny_llama_dir, twin_base_dir, adapter_dir, tmp_path
):
    declared = {"repo_id": "acme/tiny-llama"}
    previous = make_spec(
        tiny_llama_dir, adapter_dir, tmp_path / "v1.2", base=declared, version="1.2"
    )
    intake(previous)
    manifest = tmp_path / "v1.2" / MANIFEST_NAME
    spec = make_spec(
        twin_base_dir,
        adapter_dir,
        tmp_path / "ws",
        base=declared,
        eval={"previous": [str(manifest)]},
    )
    assert_refused_cleanly(spec, "declared base acme/tiny-llama", "release v1.2", str(adapter_dir))
    # the explicit override (base.allow_fingerprint_mismatch) lets a deliberate change through
    allowed = spec.base.model_copy(update={"allow_fingerprint_mismatch": True})
    assert intake(spec.model_copy(update={"base": allowed}))["base_id"] == "acme/tiny-llama"
    # the same base as last time passes
    same = make_spec(tiny_llama_dir, adapter_dir, tmp_path / "ws2", base=declared)
    same = same.model_copy(update={"eval": spec.eval})
    assert intake(same)["base_fingerprint"]


def test_declared_base_must_match(tiny_llama_dir, adapter_dir, tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(adapter_dir, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "acme/other-model"
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    spec = make_spec(tiny_llama_dir, adapter, tmp_path / "ws", base={"repo_id": "acme/tiny"})
    assert_refused_cleanly(spec, "acme/other-model", "acme/tiny", str(adapter))


def test_pickle_only_adapter(tiny_llama_dir, adapter_dir, tmp_path):
    adapter = tmp_path / "pickled"
    shutil.copytree(adapter_dir, adapter)
    weights = load_file(adapter / "adapter_model.safetensors")
    (adapter / "adapter_model.safetensors").unlink()
    torch.save(weights, adapter / "adapter_model.bin")

    refused = make_spec(tiny_llama_dir, adapter, tmp_path / "ws")
    assert_refused_cleanly(refused, "adapter_model.bin", "pickle")

    allowed = make_spec(tiny_llama_dir, adapter, tmp_path / "ws", adapter={"allow_pickle": True})
    assert intake(allowed)["adapter_format"] == "pickle"
    staged = load_folder(tmp_path / "ws" / "adapter")
    assert staged.keys() == weights.keys()
    assert all(torch.equal(staged[key], weights[key]) for key in weights)


def test_unsupported_peft_type(tiny_llama_dir, tmp_path):
    from peft import IA3Config, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    config = IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"])
    get_peft_model(model, config).save_pretrained(tmp_path / "ia3")
    spec = make_spec(tiny_llama_dir, tmp_path / "ia3", tmp_path / "ws")
    assert_refused_cleanly(spec, "'IA3'", "not supported")
