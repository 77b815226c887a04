"""The streaming merge against PEFT's merge_and_unload, tensor by tensor and by logits."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from release.core.events import Progress
from release.runner import run_release
from release.spec.schema import ReleaseSpec
from tests.support.lora_models import (
    load_folder,
    make_adapter,
    make_tiny_gemma4,
    max_ulps,
    peft_merge,
)

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CASES = {
    "lora-embeddings-lm_head": {"target_modules": [*LINEAR, "embed_tokens", "lm_head"]},
    "rslora-modules_to_save": {
        "target_modules": ["q_proj", "v_proj"],
        "use_rslora": True,
        "lora_alpha": 32,
        "modules_to_save": ["lm_head", "post_attention_layernorm"],
    },
    "dora-with-embedding": {"target_modules": [*LINEAR, "embed_tokens"], "use_dora": True},
}


def release(base: Path, adapter: Path, workspace: Path, **merge) -> tuple[Path, list]:
    spec = ReleaseSpec(
        name="tiny",
        version="1.0",
        base={"path": str(base)},
        adapter={"path": str(adapter)},
        workspace=workspace,
        merge=merge,
    )
    events = list(run_release(spec, only=["adapter", "merge"]))
    return workspace / "merge", events


def assert_same_tensors(ours: Path, reference: Path, base: Path) -> None:
    """Every tensor equal to PEFT's, or within one ulp of the output dtype."""
    mine, theirs, start = load_folder(ours), load_folder(reference), load_folder(base)
    assert sorted(mine) == sorted(theirs)
    worst = {
        name: max_ulps(mine[name], theirs[name], start[name].to(theirs[name].dtype))
        for name in theirs
    }
    # PEFT rounds an Embedding's delta to bf16 before adding it (see max_ulps), so its own
    # result may sit 1.5 ulp from the exact sum, 2 once rounded; we round once.
    limit = {name: 2 if "embed_tokens" in name else 1 for name in theirs}
    assert all(worst[n] <= limit[n] for n in worst), {k: v for k, v in worst.items() if v > 1}
    # not bitwise: our B @ A is exact, the same on every CPU (release.merge.lora.LoraFactors),
    # PEFT's is its BLAS's float32 one; a last-bit difference in the delta shows as 1 ulp
    # of the output where the sum sits on a rounding boundary (most tensors still exact)
    assert sum(v == 0 for v in worst.values()) >= len(worst) // 2


def assert_logits_match(merged: Path, base: Path, adapter: Path) -> None:
    """Our merged model computes what base + adapter (unmerged, PEFT) computes; both run
    in float32 so that only the rounding of the merged weights separates them."""
    from peft import PeftModel

    ids = torch.tensor([[1, 17, 230, 45, 9, 301, 77, 5]])
    f32 = torch.float32
    base_model = AutoModelForCausalLM.from_pretrained(base, dtype=f32)
    reference = PeftModel.from_pretrained(base_model, adapter)
    ours = AutoModelForCausalLM.from_pretrained(merged, dtype=f32)
    with torch.no_grad():
        expected = reference(ids).logits
        got = ours(ids).logits
        with reference.disable_adapter():
            unadapted = reference(ids).logits
    assert torch.allclose(got, expected, atol=0.05 * expected.abs().max().item(), rtol=0)
    # ...and the adapter matters: without it the logits are far further off
    assert (got - expected).abs().max() < 0.1 * (unadapted - expected).abs().max()


@pytest.mark.parametrize("case", CASES)
def test_tiny_llama_merge_equals_peft(case, tiny_llama_dir, tmp_path):
    adapter = make_adapter(tiny_llama_dir, tmp_path / "adapter", **CASES[case])
    merged, _ = release(tiny_llama_dir, adapter, tmp_path / "ws")
    reference = peft_merge(tiny_llama_dir, adapter, tmp_path / "peft")
    assert_same_tensors(merged, reference, tiny_llama_dir)
    assert_logits_match(merged, tiny_llama_dir, adapter)


@pytest.fixture(scope="module")
def tiny_gemma4_dir(smollm2_tokenizer_dir, tmp_path_factory) -> Path:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    return make_tiny_gemma4(tmp_path_factory.mktemp("gemma4"), tokenizer)


def test_tiny_gemma4_merge_equals_peft(tiny_gemma4_dir, tmp_path):
    adapter = make_adapter(tiny_gemma4_dir, tmp_path / "adapter", target_modules=LINEAR)
    merged, _ = release(tiny_gemma4_dir, adapter, tmp_path / "ws")
    reference = peft_merge(tiny_gemma4_dir, adapter, tmp_path / "peft")
    assert_same_tensors(merged, reference, tiny_gemma4_dir)
    assert_logits_match(merged, tiny_gemma4_dir, adapter)


def test_gemma4_checkpoint_with_other_names(tiny_gemma4_dir, tmp_path):
    """A checkpoint saved from the bare text model names tensors 'layers.0…' while the
    adapter (trained on Gemma4ForCausalLM) says 'model.layers.0…': intake maps them by
    the model's structure and the merge keeps the checkpoint's own names."""
    from safetensors.torch import load_file, save_file

    bare = tmp_path / "bare"
    shutil.copytree(tiny_gemma4_dir, bare)
    tensors = load_file(bare / "model.safetensors")
    renamed = {name.removeprefix("model."): tensor for name, tensor in tensors.items()}
    assert renamed.keys() != tensors.keys()
    save_file(renamed, bare / "model.safetensors", metadata={"format": "pt"})
    adapter = make_adapter(tiny_gemma4_dir, tmp_path / "adapter", target_modules=LINEAR)

    merged, _ = release(bare, adapter, tmp_path / "ws")

    assert set(load_folder(merged)) == set(renamed)
    reference = peft_merge(tiny_gemma4_dir, adapter, tmp_path / "peft")
    ours = AutoModelForCausalLM.from_pretrained(merged).state_dict()
    theirs = AutoModelForCausalLM.from_pretrained(reference).state_dict()
    assert max(max_ulps(ours[name], theirs[name]) for name in theirs) <= 1
    assert_logits_match(merged, tiny_gemma4_dir, adapter)


def test_float32_output_in_shards(tiny_llama_dir, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(tiny_llama_dir, base)
    (base / "README.md").write_text("# the base's card, not ours\n")
    adapter = make_adapter(base, tmp_path / "adapter", target_modules=LINEAR)

    merged, events = release(base, adapter, tmp_path / "ws", dtype="float32", shard_size="4MB")

    index = json.loads((merged / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 2 and all((merged / name).is_file() for name in shards)
    for name in shards:  # at most 4 MB of tensors, unless one tensor is larger alone
        count = sum(shard == name for shard in index["weight_map"].values())
        assert count == 1 or (merged / name).stat().st_size <= 4 * 10**6 + 10**4
    assert not (merged / "README.md").exists()
    assert (merged / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    config = json.loads((merged / "config.json").read_text())
    assert config["dtype"] == "float32"
    assert {t.dtype for t in load_folder(merged).values()} == {torch.float32}

    bytes_done = [e.done for e in events if isinstance(e, Progress) and e.stage == "merge"]
    total = sum(p.stat().st_size for p in base.glob("*.safetensors"))
    assert bytes_done == sorted(bytes_done) and 0.99 * total < bytes_done[-1] < total
    finished = [e for e in events if type(e).__name__ == "StageFinished"]
    facts = finished[-1].facts
    assert facts["shards"] == len(shards) and facts["dtype"] == "float32"
    assert facts["bytes_written"] == index["metadata"]["total_size"]
    # each shard was hashed while written; the manifest takes that hash: the file's own
    outputs = json.loads((tmp_path / "ws" / "manifest.json").read_text())["stages"]["merge"]
    recorded = {Path(o["path"]).name: o["sha256"] for o in outputs["outputs"]}
    for name in shards:
        assert recorded[name] == hashlib.sha256((merged / name).read_bytes()).hexdigest()
    assert facts["tensors_merged"] == 2 * len(LINEAR)

    # float32 all the way: PEFT merging on a float32 copy of the base agrees within what
    # float32 arithmetic of B @ A leaves (its BLAS's rounding, ours exact: not bitwise)
    reference = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    reference.save_pretrained(tmp_path / "base32")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(base / name, tmp_path / "base32" / name)
    reference = peft_merge(tmp_path / "base32", adapter, tmp_path / "peft")
    ours, theirs, start = load_folder(merged), load_folder(reference), load_folder(base)
    assert sorted(ours) == sorted(theirs)
    for name, value in theirs.items():
        moved = (value - start[name].float()).abs()  # the adapter's delta, or nothing
        bound = 2**-20 * (start[name].float().abs() + moved).max()
        assert (ours[name] - value).abs().max() <= bound, name
    AutoModelForCausalLM.from_pretrained(merged)
