"""Tiny Gemma 4 checkpoints of the real layouts, built offline, and their adapters.

- ``gemma4_tokenizer``: a Gemma-style tokenizer (BPE over "▁"-joined pieces with byte
  fallback, ``<pad>``/``<eos>``/``<bos>``/``<unk>``/``<mask>`` at 0..4 as Gemma has them,
  Gemma 4's turn, channel, tool and media tokens) with a Gemma 4 chat template. Trained
  here with ``tokenizers`` on the repository's own text.
- ``make_gemma4_multimodal``: ``Gemma4ForConditionalGeneration`` from transformers' own
  ``Gemma4TextConfig``/``Gemma4VisionConfig``/``Gemma4AudioConfig``: per-layer embeddings,
  sliding and full attention with their own head dims, KV-shared layers, softcapping, and
  both towers with their clipped linears (the 0-d ``input_min``... tensors); the
  processor and preprocessor configs a Gemma 4 repo ships, written by transformers' own
  processor classes.
- ``make_gemma4_text``: ``Gemma4ForCausalLM``, the text model alone, as text-only
  fine-tunes save it.
- ``TEXT_LORA``, ``LANGUAGE_MODEL_LORA``, ``TOWERS_LORA``: adapter settings as published
  Gemma 4 LoRAs use them.
- ``MOE``: the text config's MoE form (``make_gemma4_text(path, **MOE)``), the layout of
  Gemma-4-26B-A4B.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
"""Gemma's first five ids, in Gemma's order."""
TURN_TOKENS = ["<|turn>", "<turn|>", "<|channel>", "<channel|>"]
TOOL_TOKENS = ["<|tool>", "<tool|>", "<|tool_call>", "<tool_call|>", "<|tool_response>"]
TOOL_TOKENS += ["<tool_response|>", '<|"|>']
MEDIA_TOKENS = ["<|image>", "<image|>", "<|image|>", "<|audio>", "<audio|>", "<|audio|>"]
MEDIA_TOKENS += ["<|video|>"]
END_OF_TURN = "<turn|>"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<|turn>{{ role }}\n{{ message['content'] | trim }}<turn|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|turn>model\n{% endif %}"
)
"""Gemma 4's turn layout (``<|turn>role\\n…<turn|>``), text content only."""

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MOE = {"enable_moe_block": True, "num_experts": 4, "top_k_experts": 2, "moe_intermediate_size": 32}
"""transformers' Gemma4TextConfig in its MoE form, as Gemma-4-26B-A4B has it: each layer a
dense MLP beside a router and experts stored as 3-D ``experts.gate_up_proj`` /
``experts.down_proj`` parameters."""
TEXT_LORA = {"target_modules": PROJECTIONS}
"""The language model's projections, as a text-only Gemma 4 LoRA names them."""
LANGUAGE_MODEL_LORA = {
    "target_modules": r".*language_model.*\.(q|k|v|o|gate|up|down)_proj",
    "modules_to_save": ["embed_vision"],
}
"""On the multimodal checkpoint a plain list would also match the towers' clipped
linears (PEFT refuses their wrapper), so trainers scope it to the language model; the
vision embedder trained in full (``modules_to_save``)."""
TOWERS_LORA = {
    "target_modules": r".*(language_model.*\.(q|k|v|o|gate|up|down)_proj"
    r"|_tower\..*\.(q|k|v)_proj\.linear)",
}
"""Also the towers' clippable linears (``…q_proj.linear``), as some published Gemma 4
adapters target them."""


def _training_lines() -> list[str]:
    data = REPO / "release" / "data"
    lines = data.joinpath("heldout.txt").read_text(encoding="utf-8").splitlines()
    for line in data.joinpath("demo_train.jsonl").read_text(encoding="utf-8").splitlines():
        lines += [message["content"] for message in json.loads(line)["messages"]]
    return [line for line in lines if line.strip()]


def gemma4_tokenizer(vocab_size: int = 700):
    """A GemmaTokenizer trained here: specials, chat tokens and the 256 byte pieces first
    (ids fixed), then BPE pieces learnt from the repository's text."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import GemmaTokenizer

    chat = TURN_TOKENS + TOOL_TOKENS + MEDIA_TOKENS
    fixed = SPECIAL + chat + [f"<0x{byte:02X}>" for byte in range(256)]
    trainer_model = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    trainer_model.normalizer = normalizers.Replace(" ", "▁")
    trainer_model.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=fixed, show_progress=False)
    trainer_model.train_from_iterator(_training_lines(), trainer=trainer)
    learnt = json.loads(trainer_model.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learnt["merges"]]
    tokenizer = GemmaTokenizer(
        vocab=learnt["vocab"],
        merges=merges,
        add_bos_token=True,
        extra_special_tokens={
            "image_token": "<|image|>",
            "boi_token": "<|image>",
            "eoi_token": "<image|>",
            "audio_token": "<|audio|>",
            "boa_token": "<|audio>",
            "eoa_token": "<audio|>",
        },
    )
    tokenizer.add_special_tokens({"additional_special_tokens": chat})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _text_config(tokenizer, **overrides):
    from transformers import Gemma4TextConfig

    vocab = len(tokenizer)
    settings = {
        "vocab_size": vocab,
        "vocab_size_per_layer_input": vocab,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 4,
        "layer_types": ["sliding_attention", "full_attention"] * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "global_head_dim": 32,
        "hidden_size_per_layer_input": 16,
        "sliding_window": 32,
        "max_position_embeddings": 512,
        "final_logit_softcapping": 30.0,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": _stop_ids(tokenizer),
    }
    return Gemma4TextConfig(**(settings | overrides))


def _stop_ids(tokenizer) -> list[int]:
    """Gemma 4's stop tokens: <eos>, end of turn, start of a tool response."""
    ids = tokenizer.convert_tokens_to_ids(["<eos>", END_OF_TURN, "<|tool_response>"])
    return list(ids)


def _save(model, tokenizer, path: Path) -> Path:
    import torch
    from transformers import GenerationConfig

    with torch.no_grad():  # confident logits, so top-1 comparisons mean something
        model.get_input_embeddings().weight.mul_(20)
    model = model.to(torch.bfloat16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=_stop_ids(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,
        top_k=64,
        top_p=0.95,
    ).save_pretrained(path)
    return path


def make_gemma4_text(path: Path, tokenizer=None, *, seed: int = 0, **overrides) -> Path:
    """A 4-layer Gemma4ForCausalLM (sliding/full alternating, per-layer embeddings)."""
    import torch
    from transformers import Gemma4ForCausalLM

    tokenizer = tokenizer or gemma4_tokenizer()
    torch.manual_seed(seed)
    model = Gemma4ForCausalLM(_text_config(tokenizer, **overrides))
    return _save(model, tokenizer, path)


def make_gemma4_multimodal(
    path: Path, tokenizer=None, *, seed: int = 0, audio: dict | None = None, **overrides
) -> Path:
    """A Gemma4ForConditionalGeneration: the text model above plus a 1-layer vision and a
    1-layer audio tower (clipped linears in both), with its processor files; ``audio``
    overrides the audio tower's settings."""
    import torch
    from transformers import (
        Gemma4AudioConfig,
        Gemma4Config,
        Gemma4ForConditionalGeneration,
        Gemma4VisionConfig,
    )

    tokenizer = tokenizer or gemma4_tokenizer()
    vision = Gemma4VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        patch_size=4,
        position_embedding_size=64,
        pooling_kernel_size=2,
        use_clipped_linears=True,
    )
    # The subsampling convolutions keep Gemma 4's channels (128, 32): llama.cpp's audio
    # graph assumes them, and aborts (GGML_ASSERT) on narrower ones.
    audio_settings = {
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "output_proj_dims": 32,
    }
    audio_config = Gemma4AudioConfig(**(audio_settings | (audio or {})))
    ids = tokenizer.convert_tokens_to_ids
    config = Gemma4Config(
        text_config=_text_config(tokenizer, **overrides),
        vision_config=vision,
        audio_config=audio_config,
        boi_token_id=ids("<|image>"),
        eoi_token_id=ids("<image|>"),
        image_token_id=ids("<|image|>"),
        video_token_id=ids("<|video|>"),
        boa_token_id=ids("<|audio>"),
        eoa_token_index=ids("<audio|>"),
        audio_token_id=ids("<|audio|>"),
    )
    torch.manual_seed(seed)
    model = Gemma4ForConditionalGeneration(config)
    _save(model, tokenizer, path)
    _save_processor(path)
    return path


def _save_processor(path: Path) -> None:
    """The processor files a Gemma 4 repo ships: ``preprocessor_config.json`` (the audio
    feature extractor, written by transformers' own class) and ``processor_config.json``
    with the image processor's settings nested, as the Hub's Gemma 4 repos have it.
    The image processor is written out by hand: its class needs Pillow and torchvision,
    which are not dependencies here; the values are its class defaults but the patch and
    pooling sizes of this tiny vision tower."""
    from transformers import Gemma4AudioFeatureExtractor

    Gemma4AudioFeatureExtractor().save_pretrained(path)
    image_processor = {
        "image_processor_type": "Gemma4ImageProcessor",
        "do_convert_rgb": True,
        "do_normalize": False,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.0, 0.0, 0.0],
        "image_std": [1.0, 1.0, 1.0],
        "max_soft_tokens": 280,
        "patch_size": 4,
        "pooling_kernel_size": 2,
        "resample": 3,
        "rescale_factor": 1 / 255,
    }
    processor = {"processor_class": "Gemma4Processor", "image_processor": image_processor}
    (path / "processor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
