"""A corpus of adapter layouts as users train and save them, each checked against
PEFT's own load of the same files: our merge equals PEFT's ``merge_and_unload`` within
one ulp of the output dtype (two for embeddings, see ``tests.test_merge``), or intake
refuses it in one line that names the way out.

Each merged layout's worst ulp difference is printed (``-s``): the corpus table."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from release.core.errors import InputError
from release.runner import run_release
from release.spec.schema import ReleaseSpec, load_spec
from tests.support.adapter_layouts import (
    CHAT_TEMPLATE,
    LORA_LAYOUTS,
    REFUSED_INITS,
    UNSLOTH_BASE,
    added_tokens_adapter,
    lora_adapter,
    pissa_converted_adapter,
    sft_adapter,
    trainable_tokens_adapter,
    unsloth_adapter,
    untied_copy,
)
from tests.support.lora_models import load_folder, make_tiny_gemma4, max_ulps
from tests.test_merge import release


def peft_reference(base: Path, adapter: Path, vocab: int | None = None) -> dict[str, torch.Tensor]:
    """PEFT's load + merge_and_unload of the same files, as a state dict (its own
    parameter names; a tied head appears under both)."""
    from peft import PeftModel

    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    if vocab is not None:  # as PEFT's users load an adapter of added tokens
        model.resize_token_embeddings(vocab)
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return {name: tensor.detach().clone() for name, tensor in merged.state_dict().items()}


@functools.cache
def _state_dict(base: Path) -> dict[str, torch.Tensor]:
    """A base's parameters as transformers loads them, once per base (read-only)."""
    return AutoModelForCausalLM.from_pretrained(base, dtype="auto").state_dict()


def worst_ulps(merged: Path, reference: dict[str, torch.Tensor], base: Path) -> float:
    """Largest ulp difference over the merged model's parameters, loaded by transformers."""
    ours = AutoModelForCausalLM.from_pretrained(merged, dtype="auto").state_dict()
    start = _state_dict(base)
    assert sorted(ours) == sorted(reference)
    worst = 0.0
    for name, theirs in reference.items():
        origin = start.get(name)
        origin = (
            origin.to(theirs.dtype) if origin is not None and origin.shape == theirs.shape else None
        )
        worst = max(worst, max_ulps(ours[name], theirs, origin))
    return worst


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """torch on one thread while the corpus runs: the tiny SVDs and QRs of PiSSA and
    OLoRA (PEFT's and ours) took 0.14 s each on two threads of a busy machine against
    0.004 s on one (the threads wait on each other). Ours and PEFT's run alike either way."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.mark.parametrize("layout", LORA_LAYOUTS)
def test_layout_merges_as_peft_does(layout, base_of, tmp_path):
    model, base = base_of
    adapter, _ = lora_adapter(base, tmp_path / "adapter", layout)
    merged, _ = release(base, adapter, tmp_path / "ws")
    worst = worst_ulps(merged, peft_reference(base, adapter), base)
    _report(model, layout, f"equal to PEFT, max {worst:g} ulp")
    assert worst <= 2


def test_pissa_converted_to_lora_merges_as_peft_does(tiny_llama_dir, tmp_path):
    """PEFT's conversion turns a PiSSA adapter into a plain LoRA of twice the rank."""
    adapter, _ = pissa_converted_adapter(tiny_llama_dir, tmp_path / "converted")
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    merged, _ = release(tiny_llama_dir, adapter, tmp_path / "ws")
    worst = worst_ulps(merged, peft_reference(tiny_llama_dir, adapter), tiny_llama_dir)
    _report("tiny Llama", "pissa converted (path_initial_model_for_weight_conversion)",
            f"equal to PEFT, max {worst:g} ulp")  # fmt: skip
    assert worst <= 2


@pytest.mark.parametrize("init", REFUSED_INITS)
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
    assert "\n" not in message and REFUSED_INITS[init] in message
    assert "path_initial_model_for_weight_conversion" in message or init == "loftq"
    assert not (tmp_path / "ws" / "merge").exists()


@pytest.fixture(scope="module")
def tied_llama_dir(smollm2_tokenizer_dir, tmp_path_factory) -> Path:
    from tests.support.models import make_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    return make_tiny_llama(tmp_path_factory.mktemp("tied"), tokenizer, tie_word_embeddings=True)


@pytest.mark.parametrize(
    "case", ["untied base", "tied base, trained tied", "tied base, trained apart"]
)
def test_added_tokens_merge_as_peft_does(case, tiny_llama_dir, tmp_path, request):
    base = tiny_llama_dir if case == "untied base" else request.getfixturevalue("tied_llama_dir")
    adapter, vocab = added_tokens_adapter(base, tmp_path / "adapter", untie="apart" in case)
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

    from tests.support.gguf_helpers import gguf_context, run_gguf_stage

    adapter, vocab = added_tokens_adapter(tiny_llama_dir, tmp_path / "adapter", untie=True)
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


@pytest.mark.parametrize("grow", [False, True], ids=["base vocabulary", "added tokens"])
@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_trainable_tokens_merge_as_peft_does(grow, tied, tiny_llama_dir, tmp_path, request):
    base = request.getfixturevalue("tied_llama_dir") if tied else tiny_llama_dir
    adapter, vocab = trainable_tokens_adapter(base, tmp_path / "adapter", grow=grow)
    merged, _ = release(base, adapter, tmp_path / "ws")
    config = json.loads((merged / "config.json").read_text())
    assert config.get("tie_word_embeddings", False) == tied
    worst = worst_ulps(merged, peft_reference(base, adapter, vocab), base)
    layout = f"trainable_token_indices, {'tied' if tied else 'untied'}, "
    _report("tiny Llama", layout + ("added tokens" if grow else "base vocabulary"),
            f"equal to PEFT, max {worst:g} ulp")  # fmt: skip
    assert worst <= 2


def test_tied_head_tokens_at_other_rows_are_refused_with_the_way_out(tied_llama_dir, tmp_path):
    """Trainable tokens of lm_head at other rows than embed_tokens' on a tied base: PEFT's
    own merge writes both into the one tied matrix (its merged logits differ from the
    trained model's), so it is refused; the way out the message names, the base untied,
    merges equal to PEFT's merge onto that base."""
    rows = {"embed_tokens": [5, 17], "lm_head": [9, 30]}
    adapter, _ = trainable_tokens_adapter(
        tied_llama_dir, tmp_path / "adapter", grow=False, indices=rows
    )
    with pytest.raises(InputError) as refused:
        release(tied_llama_dir, adapter, tmp_path / "ws")
    message = str(refused.value)
    layout = "trainable_token_indices, tied, lm_head rows apart"
    _report("tiny Llama", layout, f"refused: {message}")
    assert "\n" not in message and "merge_and_unload" in message
    assert "tie_word_embeddings: false" in message
    assert not (tmp_path / "ws" / "merge").exists()

    untied = untied_copy(tied_llama_dir, tmp_path / "untied")
    merged, _ = release(untied, adapter, tmp_path / "ws-untied")
    worst = worst_ulps(merged, peft_reference(untied, adapter), untied)
    _report("tiny Llama", "the same, onto the base untied", f"equal to PEFT, max {worst:g} ulp")
    assert worst <= 2


def _release_as(base: Path, repo_id: str, adapter: Path, workspace: Path) -> Path:
    """Intake and merge with the spec naming ``repo_id`` as the base (read from ``base``)."""
    spec = ReleaseSpec(
        name="tiny",
        version="1.0",
        base={"path": str(base), "repo_id": repo_id},
        adapter={"path": str(adapter)},
        workspace=workspace,
    )
    list(run_release(spec, only=["adapter", "merge"]))
    return workspace / "merge"


def test_unsloth_adapter_merges_onto_the_unquantized_base(tiny_llama_dir, tmp_path):
    """An adapter unsloth trained on a ``-bnb-4bit`` repo (QLoRA), its target_modules a
    regex: merged onto the unquantized repo its name comes from, equal to PEFT's; the
    release.yaml `model-release init` writes for it names that repo, not the 4-bit one."""
    from release.cli import main

    adapter, _ = unsloth_adapter(tiny_llama_dir, tmp_path / "adapter")
    plain = UNSLOTH_BASE.removesuffix("-bnb-4bit")
    spec_path = tmp_path / "release.yaml"
    assert main(["init", str(adapter), "--output", str(spec_path)]) == 0
    assert load_spec(spec_path).base.repo_id == plain
    assert f"the unquantized weights of {UNSLOTH_BASE}," in spec_path.read_text()
    merged = _release_as(tiny_llama_dir, plain, adapter, tmp_path / "ws")
    worst = worst_ulps(merged, peft_reference(tiny_llama_dir, adapter), tiny_llama_dir)
    _report("tiny Llama", f"unsloth ({UNSLOTH_BASE}, regex targets), base {plain}",
            f"equal to PEFT, max {worst:g} ulp")  # fmt: skip
    assert worst <= 2


@pytest.mark.parametrize(
    ("repo_id", "plain"),
    [
        ("unsloth/llama-3-8b-bnb-4bit", "unsloth/llama-3-8b"),
        ("unsloth/gemma-4-e2b-it-unsloth-bnb-4bit", "unsloth/gemma-4-e2b-it"),  # dynamic 4-bit
        ("acme/Model-BNB-8bit", "acme/Model"),
        ("acme/model", None),
    ],
)
def test_the_unquantized_repo_of_a_4bit_name(repo_id, plain):
    from release.spec.base_names import unquantized_repo

    assert unquantized_repo(repo_id) == plain


def test_unsloth_adapter_elsewhere_names_the_unquantized_base(tiny_llama_dir, tmp_path):
    """Against another base, or against the 4-bit repo itself, the one line names the
    unquantized repo to point base at."""
    from tests.support.bnb_models import make_bnb_4bit

    adapter, _ = unsloth_adapter(tiny_llama_dir, tmp_path / "adapter")
    plain = UNSLOTH_BASE.removesuffix("-bnb-4bit")
    four_bit = make_bnb_4bit(tiny_llama_dir, tmp_path / "bnb")
    for base, repo_id in [(tiny_llama_dir, "acme/tiny-llama"), (four_bit, UNSLOTH_BASE)]:
        workspace = tmp_path / f"ws-{repo_id.replace('/', '-')}"
        with pytest.raises(InputError) as refused:
            _release_as(base, repo_id, adapter, workspace)
        message = str(refused.value)
        _report("tiny Llama", f"unsloth, base {repo_id}", f"refused: {message}")
        assert "\n" not in message and "set base.repo_id" in message
        assert f"{plain}," in message or f"{plain})" in message  # the name, not a prefix of it
        assert not (workspace / "merge").exists()


SFT = {"chat template file": False, "chat template cloned, tokens added": True}


@pytest.fixture(scope="module", params=list(SFT))
def sft_trained(request, tiny_llama_dir, tmp_path_factory) -> tuple[str, Path, int | None]:
    """A LoRA trained by TRL's SFTTrainer on the tiny Llama (two steps, CPU)."""
    folder = tmp_path_factory.mktemp("sft") / "adapter"
    adapter, vocab = sft_adapter(tiny_llama_dir, folder, clone=SFT[request.param])
    return request.param, adapter, vocab


def test_sft_trainer_adapter_merges_as_peft_does_with_its_chat_template(
    sft_trained, tiny_llama_dir, tmp_path
):
    case, adapter, vocab = sft_trained
    assert (adapter / "training_args.bin").is_file()  # TRL's layout, left unread
    merged, _ = release(tiny_llama_dir, adapter, tmp_path / "ws")
    tokenizer = AutoTokenizer.from_pretrained(merged)
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert (merged / "chat_template.jinja").read_text() == CHAT_TEMPLATE
    if vocab is not None:  # TRL's clone: the new tokens, the vocabulary a multiple of 64
        assert vocab % 64 == 0
        assert json.loads((merged / "config.json").read_text())["vocab_size"] == vocab
        assert tokenizer("a <tool_call> b").input_ids.count(49152) == 1
    worst = worst_ulps(merged, peft_reference(tiny_llama_dir, adapter, vocab), tiny_llama_dir)
    _report("tiny Llama", f"TRL SFTTrainer, {case}", f"equal to PEFT, max {worst:g} ulp")
    assert worst <= 2


def test_added_tokens_evaluate_after_the_base_figures_are_cached(tiny_llama_dir, tmp_path):
    """The evaluate stage keeps the base's figures for the next adapter on that base; an
    adapter of added tokens evaluates against the base resized (rows transformers draws
    at random), so it neither reads those figures (their logits are narrower) nor keeps
    its own."""
    from release.core.manifest import MANIFEST_NAME, Manifest

    def evaluated(adapter: Path, workspace: Path) -> dict:
        spec = ReleaseSpec(
            name="tiny",
            version="1.0",
            base={"path": str(tiny_llama_dir)},
            adapter={"path": str(adapter)},
            workspace=workspace,
            eval={"prompts": []},
        )
        list(run_release(spec, only=["adapter", "merge", "evaluate"]))
        return Manifest.load(workspace / MANIFEST_NAME).stages["evaluate"].facts

    plain, _ = lora_adapter(tiny_llama_dir, tmp_path / "plain", "plain")
    assert evaluated(plain, tmp_path / "ws-plain")["equivalence"]["passed"]
    grown, _ = added_tokens_adapter(tiny_llama_dir, tmp_path / "grown", untie=True)
    facts = evaluated(grown, tmp_path / "ws-grown")
    assert facts["equivalence"]["passed"] and facts["perplexity"]["passed"]
