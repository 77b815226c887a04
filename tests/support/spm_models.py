"""A SentencePiece tokenizer trained here, offline, the way Llama 2 and Mistral 7B's
were (BPE, byte fallback, <unk>/<s>/</s> at 0/1/2, digits split, whitespace kept), and a
tiny Llama that uses it, with the files a fine-tune of such a base carries.

transformers 5 reads a lone ``tokenizer.model`` only through protobuf, which is not a
dependency; so the HF tokenizer is built here the way transformers' own
``SentencePieceExtractor`` builds it (the pieces in id order, merges generated from them,
control pieces as special tokens), with the pieces read by sentencepiece instead.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
ADDED = {"<|im_start|>": True, "<|im_end|>": True, "<calc>": False}
"""Tokens a fine-tune adds on top of the base's pieces: content -> special."""


def _training_lines() -> list[str]:
    """The held-out text and the demo conversations: units, °, −, ×, digits."""
    data = REPO / "release" / "data"
    lines = data.joinpath("heldout.txt").read_text(encoding="utf-8").splitlines()
    for line in data.joinpath("demo_train.jsonl").read_text(encoding="utf-8").splitlines():
        lines += [message["content"] for message in json.loads(line)["messages"]]
    return [line for line in lines if line.strip()]


def train_sentencepiece(path: Path, vocab_size: int = 600) -> Path:
    """Train a BPE SentencePiece model with Llama's options; write it to ``path``."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_training_lines()),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        character_coverage=1.0,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())
    return path


def spm_tokenizer(model_file: Path):
    """transformers' LlamaTokenizer over ``model_file``'s pieces, BOS added as Llama's
    tokenizer_config.json asks, with ``ADDED`` appended and a ChatML template."""
    from sentencepiece import SentencePieceProcessor
    from tokenizers import AddedToken
    from transformers import LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    processor = SentencePieceProcessor(model_file=str(model_file))
    pieces = range(processor.vocab_size())
    vocab = {processor.IdToPiece(index): index for index in pieces}
    control = [
        AddedToken(processor.IdToPiece(index), normalized=False, special=True)
        for index in pieces
        if processor.IsControl(index)
    ]
    tokenizer = LlamaTokenizer(
        vocab=vocab,
        merges=generate_merges(vocab),
        additional_special_tokens=control,
        add_bos_token=True,
        add_eos_token=False,
        legacy=True,
    )
    tokenizer.add_tokens([AddedToken(text, special=special) for text, special in ADDED.items()])
    tokenizer.chat_template = CHATML
    return tokenizer


def make_spm_llama(path: Path, *, pad_to: int = 64) -> Path:
    """The tiny Llama (tests/support/models.py), made confident, with the SentencePiece tokenizer
    saved as a Llama 2 fine-tune on the Hub has it (tokenizer.model, tokenizer.json, and
    tokenizer_config.json in transformers 4's form), and embedding rows padded to a
    multiple of ``pad_to`` past the tokenizer's length, as many bases pad them."""
    import torch
    from transformers import LlamaForCausalLM

    from tests.support.gguf_helpers import make_confident
    from tests.support.models import make_tiny_llama

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = spm_tokenizer(train_sentencepiece(path / "tokenizer.model"))
    rows = -(-len(tokenizer) // pad_to) * pad_to
    make_tiny_llama(path, tokenizer, vocab_size=rows)
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
    make_confident(model).save_pretrained(path)
    return as_saved_by_transformers_4(path)


def as_saved_by_transformers_4(path: Path) -> Path:
    """Rewrite tokenizer_config.json the way transformers 4 saved it, as Llama 2 and
    Mistral 7B v0.1 fine-tunes on the Hub have it: every added token also in
    ``added_tokens_decoder`` (transformers 5 keeps them in tokenizer.json alone), and
    ``add_bos_token``, ``add_eos_token`` and ``legacy`` spelled out (transformers 5 drops
    them; ``legacy`` true is the Llama 2 tokenizer's space after special tokens, which
    llama.cpp's tokenizer also has)."""
    config_file = path / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    added = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    config["added_tokens_decoder"] = {
        str(entry["id"]): {key: value for key, value in entry.items() if key != "id"}
        for entry in added
    }
    config |= {"add_bos_token": True, "add_eos_token": False, "legacy": True}
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path
