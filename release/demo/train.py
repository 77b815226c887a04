"""Train the demo's LoRA adapter: a real peft LoRA, a few dozen steps on CPU.

The data (release/data/demo_train.jsonl, 320 chats) teaches SmolLM2 to answer unit
conversions in one fixed format. Loss is computed on the assistant's tokens only.
Deterministic for a given seed, so the demo and the test fixtures are reproducible.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from release.core.files import replace_dir
from release.core.quiet import held_stderr

DEMO_LORA = {
    "r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


def demo_chats() -> list[list[dict]]:
    text = resources.files("release").joinpath("data/demo_train.jsonl").read_text("utf-8")
    return [json.loads(line)["messages"] for line in text.splitlines() if line.strip()]


def _encode(tokenizer, messages: list[dict], max_len: int) -> tuple[list[int], list[int]]:
    """Token ids and labels; labels are -100 except on the assistant's answer."""
    prompt = tokenizer.apply_chat_template(
        messages[:-1], add_generation_prompt=True, tokenize=False
    )
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full, add_special_tokens=False)["input_ids"][:max_len]
    labels = [-100] * min(len(prompt_ids), len(ids)) + ids[len(prompt_ids) :]
    return ids, labels


def train_lora(
    base_dir: Path,
    out_dir: Path,
    *,
    base_id: str,
    steps: int = 30,
    batch_size: int = 4,
    lr: float = 3e-4,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train a LoRA on ``base_dir``, save the adapter to ``out_dir``; returns the losses."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    with held_stderr():  # transformers' loading bar and deprecation warnings
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **DEMO_LORA))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    examples = [_encode(tokenizer, chat, 96) for chat in demo_chats()]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    losses: list[float] = []
    model.train()
    for step in range(1, steps + 1):
        batch = rng.sample(examples, batch_size)
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if on_step:
            on_step(step, losses[-1])

    model.peft_config["default"].base_model_name_or_path = base_id
    staging = out_dir.with_name(f".partial-{out_dir.name}")
    shutil.rmtree(staging, ignore_errors=True)
    with held_stderr():  # PEFT: "Could not find a config file in <the Hub id>"
        model.save_pretrained(staging)
    replace_dir(staging, out_dir)
    return losses
