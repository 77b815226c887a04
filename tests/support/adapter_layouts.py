"""The adapter layouts of the corpus, saved as users' tools save them, on a given base:
shared by tests/test_adapter_corpus.py (each merge against PEFT's) and
bench/adapter_corpus.py (each released end to end).

- ``LORA_LAYOUTS``: plain PEFT ``LoraConfig`` variants (``make_adapter``).
- ``REFUSED_INITS``: ``init_lora_weights`` values whose merge PEFT's load cannot repeat.
- ``added_tokens_adapter`` / ``trainable_tokens_adapter``: a vocabulary grown by special
  tokens (``modules_to_save``) or some rows trained (``trainable_token_indices``);
  ``untied_copy``: a tied base untied, the way out for a tied head trained apart.
- ``pissa_converted_adapter``: PiSSA turned into a plain LoRA by PEFT's conversion.
- ``unsloth_adapter``: a LoRA as unsloth saves it (its 4-bit base named, its regex).
- ``sft_adapter``: a LoRA really trained by TRL's SFTTrainer, its chat template with it.

A builder returns the adapter's folder and the vocabulary PEFT's users resize the base
to before loading it (None: the base's own).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.support.lora_models import make_adapter

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
LORA_LAYOUTS: dict[str, dict] = {
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
REFUSED_INITS = {
    "pissa_niter_4": "randomized SVD",
    "corda": "activations of the training data",
    "loftq": "LoftQ quantization",
}
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TOOL_TOKENS = ["<tool_call>", "</tool_call>"]


def _randomize(peft_model, seed: int, skip: str | None = None) -> None:
    """Every trainable tensor moved (a fresh LoRA has B = 0 and merges to the base)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if param.requires_grad and (skip is None or skip not in name):
                param.add_(torch.randn(param.shape, generator=generator).to(param.dtype) * 0.05)


def lora_adapter(base: Path, path: Path, layout: str) -> tuple[Path, None]:
    return make_adapter(base, path, **LORA_LAYOUTS[layout]), None


def added_tokens_adapter(base: Path, path: Path, *, untie: bool) -> tuple[Path, int]:
    """Two special tokens added, the embeddings resized, embed_tokens and lm_head
    trained whole (modules_to_save) with the LoRA, the tokenizer saved beside it."""
    from peft import LoraConfig, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.add_special_tokens({"additional_special_tokens": TOOL_TOKENS})
    tokenizer.chat_template = CHAT_TEMPLATE  # as TRL's SFTTrainer saves it beside the adapter
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    model.resize_token_embeddings(len(tokenizer))
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=LINEAR, modules_to_save=["embed_tokens", "lm_head"]
    )
    peft_model = get_peft_model(model, config)
    _randomize(peft_model, 5, skip=None if untie else "lm_head")
    if not untie:  # trained tied: the head copy is the embedding copy
        with torch.no_grad():
            wrapped = peft_model.base_model.model
            head = wrapped.lm_head.modules_to_save["default"].weight
            head.copy_(wrapped.model.embed_tokens.modules_to_save["default"].weight)
    peft_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, len(tokenizer)


def trainable_tokens_adapter(
    base: Path, path: Path, *, grow: bool, indices: dict[str, list[int]] | None = None
) -> tuple[Path, int | None]:
    """A LoRA with PEFT's trainable tokens: some embedding rows trained
    (``trainable_token_indices``), new tokens among them when the vocabulary grew;
    ``indices`` gives each layer its own rows (``{"embed_tokens": …, "lm_head": …}``)."""
    from peft import LoraConfig, get_peft_model

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    rows: list[int] | dict[str, list[int]] = indices or [5, 17]
    if grow:
        tokenizer.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
        model.resize_token_embeddings(len(tokenizer))
        rows = [len(tokenizer) - 2, len(tokenizer) - 1, 5]
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LINEAR, trainable_token_indices=rows)
    peft_model = get_peft_model(model, config)
    _randomize(peft_model, 7)
    peft_model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path, len(tokenizer) if grow else None


def untied_copy(tied: Path, path: Path) -> Path:
    """``tied``'s model with its head untied (``tie_word_embeddings: false``, ``lm_head``
    a copy of the embedding), the tokenizer beside it: the base a tied head's adapter
    that trains the two apart merges onto."""
    model = AutoModelForCausalLM.from_pretrained(tied, dtype="auto")
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(model.model.embed_tokens.weight.detach().clone())
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tied).save_pretrained(path)
    return path


def pissa_converted_adapter(base: Path, path: Path) -> tuple[Path, None]:
    """PEFT's conversion (save_pretrained with path_initial_model_for_weight_conversion)
    turns a PiSSA adapter into a plain LoRA of twice the rank on the unchanged base."""
    from peft import LoraConfig, get_peft_model

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LINEAR, init_lora_weights="pissa")
    peft_model = get_peft_model(model, config)
    initial = path.parent / f"{path.name}-initial"
    peft_model.peft_config["default"].init_lora_weights = True  # PEFT's documented recipe
    peft_model.save_pretrained(initial)
    peft_model.peft_config["default"].init_lora_weights = "pissa"
    _randomize(peft_model, 3)
    peft_model.save_pretrained(path, path_initial_model_for_weight_conversion=str(initial))
    return path, None


UNSLOTH_BASE = "unsloth/tiny-llama-bnb-4bit"
"""The base an unsloth adapter names: the 4-bit repo unsloth trained it on."""
UNSLOTH_TARGETS = (
    r".*?(?:self_attn|attention|attn|mlp|feed_forward|ffn|dense).*?"
    r"(?:q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj).*?"
)
"""``target_modules`` as unsloth's ``get_peft_regex`` writes it for a text-only model
(FastModel / FastVisionModel): one regex, not a list."""


def unsloth_adapter(base: Path, path: Path) -> tuple[Path, None]:
    """A LoRA as unsloth's ``model.save_pretrained`` leaves it: PEFT's files, the
    config naming the ``-bnb-4bit`` repo it was trained on (QLoRA), ``target_modules``
    as its regex, dropout 0, and unsloth's model card tags."""
    make_adapter(base, path, target_modules=LINEAR, lora_dropout=0.0)
    config_path = path / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config |= {"base_model_name_or_path": UNSLOTH_BASE, "target_modules": UNSLOTH_TARGETS}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    (path / "README.md").write_text(
        f"---\nbase_model: {UNSLOTH_BASE}\nlibrary_name: peft\n"
        "tags:\n- base_model:adapter:" + UNSLOTH_BASE + "\n- lora\n- sft\n- transformers\n"
        "- trl\n- unsloth\n---\n"
    )
    return path, None


_CONVERSATIONS = [
    [
        {"role": "user", "content": f"What is {a} plus {b}?"},
        {"role": "assistant", "content": f'<tool_call>{{"add": [{a}, {b}]}}</tool_call> {a + b}'},
    ]
    for a in range(3)
    for b in range(3)
]


def template_source(tokenizer_dir: Path, path: Path) -> Path:
    """A tokenizer folder to clone a chat template from (TRL's ``clone_chat_template``):
    ``tokenizer_dir``'s tokenizer with the tool-call tokens added and ``CHAT_TEMPLATE``."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": TOOL_TOKENS})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    return path


def sft_adapter(base: Path, path: Path, *, clone: bool, steps: int = 2) -> tuple[Path, int | None]:
    """A LoRA trained by TRL's SFTTrainer for ``steps`` steps on a chat dataset (CPU),
    saved by ``trainer.save_model``: the adapter, the tokenizer with the chat template,
    TRL's model card and ``training_args.bin``. The chat template comes from
    ``SFTConfig.chat_template_path``: a Jinja file (the vocabulary unchanged), or with
    ``clone`` a tokenizer folder whose added tokens TRL copies (embeddings resized to a
    multiple of 64 with filler ``<extra_id_N>`` tokens, the new rows trained as
    ``trainable_token_indices``, ``lm_head`` added to ``modules_to_save``, and both whole
    embeddings saved, PEFT's ``save_embedding_layers``)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    source = path.parent / f"{path.name}-template"
    if clone:
        template_source(base, source)
    else:
        source = source.with_suffix(".jinja")
        source.write_text(CHAT_TEMPLATE)
    torch.manual_seed(0)
    args = SFTConfig(
        output_dir=str(path),
        max_steps=steps,
        per_device_train_batch_size=3,
        learning_rate=5e-2,  # a few steps that move the weights visibly
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=0,
        chat_template_path=str(source),
        max_length=48,
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
        args=args,
        train_dataset=Dataset.from_dict({"messages": _CONVERSATIONS}),
        processing_class=AutoTokenizer.from_pretrained(base),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=LINEAR, task_type="CAUSAL_LM"),
    )
    trainer.train()
    trainer.save_model(str(path))
    vocab = len(trainer.processing_class)
    return path, vocab if clone else None
