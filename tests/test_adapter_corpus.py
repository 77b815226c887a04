"""A corpus of adapter layouts as users train and save them, each checked against
PEFT's own load of the same files: our merge equals PEFT's ``merge_and_unload`` within
one ulp of the output dtype (two for embeddings, see ``tests.test_merge``), or intake
refuses it in one line that names the way out.

Each merged layout's worst ulp difference is printed (``-s``): the corpus table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from release.core.errors import InputError
from tests.lora_models import load_folder, make_adapter, make_tiny_gemma4, max_ulps
from tests.test_merge import LINEAR, release

LAYOUTS: dict[str, dict] = {
    "plain": {"target_modules": LINEAR},
    "rslora": {"target_modules": LINEAR, "use_rslora": True, "lora_alpha": 16},
    "dora": {"target_modules": LINEAR, "use_dora": True},
    "rank_pattern+alpha_pattern": {
        "target_modules": LINEAR,
        "rank_pattern": {"q_proj": 8},
        "alpha_pattern": {"v_proj": 32},
    },
    "layers_to_transform": {"target_modules": LINEAR, "layers_to_transform": [1]},
    "pissa": {"target_modules": LINEAR, "init_lora_weights": "pissa"},
    "olora": {"target_modules": LINEAR, "init_lora_weights": "olora"},
    "eva (B starts at 0, base untouched)": {"target_modules": LINEAR, "init_lora_weights": "eva"},
}
REFUSED = {
    "pissa_niter_4": "randomized SVD",
    "corda": "activations of the training data",
    "loftq": "LoftQ quantization",
}


def peft_reference(base: Path, adapter: Path, vocab: int | None = None) -> dict[str, torch.Tensor]:
    """PEFT's load + merge_and_unload of the same files, as a state dict (its own
    parameter names; a tied head appears under both)."""
    from peft import PeftModel

    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    if vocab is not None:  # as PEFT's users load an adapter of added tokens
        model.resize_token_embeddings(vocab)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return {name: tensor.detach().clone() for name, tensor in merged.state_dict().items()}


def worst_ulps(merged: Path, reference: dict[str, torch.Tensor], base: Path) -> float:
    """Largest ulp difference over the merged model's parameters, loaded by transformers."""
    ours = AutoModelForCausalLM.from_pretrained(merged, dtype="auto").state_dict()
    start = AutoModelForCausalLM.from_pretrained(base, dtype="auto").state_dict()
    assert sorted(ours) == sorted(reference)
    worst = 0.0
    for name, theirs in reference.items():
        origin = start.get(name)
        origin = (
            origin.to(theirs.dtype) if origin is not None and origin.shape == theirs.shape else None
        )
        worst = max(worst, max_ulps(ours[name], theirs, origin))
    return worst


def _report(model: str, layout: str, result: str) -> None:
    print(f"\nCORPUS | {model} | {layout} | {result}")


@pytest.fixture(scope="module")
def tiny_gemma4_dir(smollm2_tokenizer_dir, tmp_path_factory) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    return make_tiny_gemma4(tmp_path_factory.mktemp("gemma4"), tokenizer)


@pytest.fixture(params=["llama", "gemma4"])
def base_of(request, tiny_llama_dir) -> tuple[str, Path]:
    if request.param == "llama":
        return "tiny Llama", tiny_llama_dir
    return "tiny Gemma 4", request.getfixturevalue("tiny_gemma4_dir")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_merges_as_peft_does(layout, base_of, tmp_path):
    model, base = base_of
    adapter = make_adapter(base, tmp_path / "adapter", **LAYOUTS[layout])
    merged, _ = release(base, adapter, tmp_path / "ws")
    worst = worst_ulps(merged, peft_reference(base, adapter), base)
    _report(model, layout, f"equal to PEFT, max {worst:g} ulp")
    assert worst <= 2


def test_pissa_converted_to_lora_merges_as_peft_does(tiny_llama_dir, tmp_path):
    """PEFT's conversion (save_pretrained with path_initial_model_for_weight_conversion)
    turns a PiSSA adapter into a plain LoRA of twice the rank on the unchanged base."""
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LINEAR, init_lora_weights="pissa")
    peft_model = get_peft_model(model, config)
    peft_model.peft_config["default"].init_lora_weights = True  # PEFT's documented recipe
    peft_model.save_pretrained(tmp_path / "initial")
    peft_model.peft_config["default"].init_lora_weights = "pissa"
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in peft_model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator).to(param.dtype) * 0.05)
    adapter = tmp_path / "converted"
    peft_model.save_pretrained(
        adapter, path_initial_model_for_weight_conversion=str(tmp_path / "initial")
    )
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    merged, _ = release(tiny_llama_dir, adapter, tmp_path / "ws")
    worst = worst_ulps(merged, peft_reference(tiny_llama_dir, adapter), tiny_llama_dir)
    _report("tiny Llama", "pissa converted (path_initial_model_for_weight_conversion)",
            f"equal to PEFT, max {worst:g} ulp")  # fmt: skip
    assert worst <= 2


@pytest.mark.parametrize("init", REFUSED)
def test_unrepeatable_initialization_is_refused(init, tiny_adapter, tiny_llama_dir, tmp_path):
    adapter = tmp_path / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["init_lora_weights"] = init
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(InputError) as refused:
        release(tiny_llama_dir, adapter, tmp_path / "ws")
    message = str(refused.value)
    _report("tiny Llama", f"init_lora_weights={init}", f"refused: {message}")
    assert "\n" not in message and REFUSED[init] in message
    assert "path_initial_model_for_weight_conversion" in message or init == "loftq"
    assert not (tmp_path / "ws" / "merge").exists()


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _added_tokens_adapter(base: Path, path: Path, *, untie: bool) -> tuple[Path, int]:
    """Two special tokens added, the embeddings resized, embed_tokens and lm_head
    trained whole (modules_to_save) with the LoRA, the tokenizer saved beside it."""
    from peft import LoraConfig, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<tool_call>", "</tool_call>"]})
    tokenizer.chat_template = CHAT_TEMPLATE  # as TRL's SFTTrainer saves it beside the adapter
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    model.resize_token_embeddings(len(tokenizer))
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=LINEAR, modules_to_save=["embed_tokens", "lm_head"]
    )
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if param.requires_grad and (untie or "lm_head" not in name):
                param.add_(torch.randn(param.shape, generator=generator).to(param.dtype) * 0.05)
        if not untie:  # trained tied: the head copy is the embedding copy
            wrapped = peft_model.base_model.model
            head = wrapped.lm_head.modules_to_save["default"].weight
            head.copy_(wrapped.model.embed_tokens.modules_to_save["default"].weight)
    peft_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, len(tokenizer)


@pytest.fixture(scope="module")
def tied_llama_dir(smollm2_tokenizer_dir, tmp_path_factory) -> Path:
    from tests.models import make_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    return make_tiny_llama(tmp_path_factory.mktemp("tied"), tokenizer, tie_word_embeddings=True)


@pytest.mark.parametrize(
    "case", ["untied base", "tied base, trained tied", "tied base, trained apart"]
)
def test_added_tokens_merge_as_peft_does(case, tiny_llama_dir, tmp_path, request):
    base = tiny_llama_dir if case == "untied base" else request.getfixturevalue("tied_llama_dir")
    adapter, vocab = _added_tokens_adapter(base, tmp_path / "adapter", untie="apart" in case)
    merged, _ = release(base, adapter, tmp_path / "ws")

    config = json.loads((merged / "config.json").read_text())
    assert config["vocab_size"] == vocab
    tied = case == "tied base, trained tied"
    assert config.get("tie_word_embeddings", False) == tied
    assert ("lm_head.weight" in load_folder(merged)) == (not tied)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.convert_tokens_to_ids("<tool_call>") == vocab - 2
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert tokenizer("a <tool_call> b").input_ids.count(vocab - 2) == 1
    reference = peft_reference(base, adapter, vocab)
    worst = worst_ulps(merged, reference, base)
    _report(
        "tiny Llama", f"added tokens, modules_to_save, {case}", f"equal to PEFT, max {worst:g} ulp"
    )
    assert worst <= 2


def test_added_tokens_reach_the_gguf(tiny_llama_dir, tmp_path):
    """The merged model's added tokens and chat template go into the GGUF, and llama.cpp
    tokenizes the new tokens as transformers does."""
    import gguf
    import llama_cpp

    from tests.gguf_helpers import gguf_context, run_gguf_stage

    adapter, vocab = _added_tokens_adapter(tiny_llama_dir, tmp_path / "adapter", untie=True)
    merged, _ = release(tiny_llama_dir, adapter, tmp_path / "ws")
    ctx = gguf_context(merged, tmp_path / "gguf-ws", types=["f16"])
    run_gguf_stage(ctx)
    (path,) = ctx.out_dir.glob("*.gguf")
    reader = gguf.GGUFReader(path)
    tokens = reader.get_field("tokenizer.ggml.tokens").contents()
    assert len(tokens) == vocab and tokens[vocab - 2 :] == ["<tool_call>", "</tool_call>"]
    assert reader.get_field("tokenizer.chat_template").contents() == CHAT_TEMPLATE
    hf = AutoTokenizer.from_pretrained(merged)
    llm = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    try:
        for text in ['a <tool_call>{"x": 1}</tool_call> b', "<tool_call>"]:
            ids = llm.tokenize(text.encode(), add_bos=False, special=True)
            assert ids == hf.encode(text, add_special_tokens=False), text
            assert vocab - 2 in ids
    finally:
        llm.close()


def _trainable_tokens_adapter(base: Path, path: Path, *, grow: bool) -> tuple[Path, int | None]:
    """A LoRA with PEFT's trainable tokens: some embedding rows trained
    (``trainable_token_indices``), new tokens among them when the vocabulary grew."""
    from peft import LoraConfig, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    indices = [5, 17]
    if grow:
        tokenizer.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
        model.resize_token_embeddings(len(tokenizer))
        indices = [len(tokenizer) - 2, len(tokenizer) - 1, 5]
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LINEAR, trainable_token_indices=indices)
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for param in peft_model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator).to(param.dtype) * 0.05)
    peft_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, len(tokenizer) if grow else None


@pytest.mark.parametrize("grow", [False, True], ids=["base vocabulary", "added tokens"])
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_trainable_tokens_merge_as_peft_does(grow, tied, tiny_llama_dir, tmp_path, request):
    base = request.getfixturevalue("tied_llama_dir") if tied else tiny_llama_dir
    adapter, vocab = _trainable_tokens_adapter(base, tmp_path / "adapter", grow=grow)
    merged, _ = release(base, adapter, tmp_path / "ws")
    config = json.loads((merged / "config.json").read_text())
    assert config.get("tie_word_embeddings", False) == tied
    worst = worst_ulps(merged, peft_reference(base, adapter, vocab), base)
    layout = f"trainable_token_indices, {'tied' if tied else 'untied'}, "
    _report("tiny Llama", layout + ("added tokens" if grow else "base vocabulary"),
            f"equal to PEFT, max {worst:g} ulp")  # fmt: skip
    assert worst <= 2
