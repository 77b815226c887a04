"""The tokenizer, as GGUF metadata: token list, types, scores or merges, special ids.

Two tokenizer families are built in. Byte-level BPE (GPT-2 style ``tokenizer.json``):
llama.cpp needs the token list, the merges and the *name* of the pre-tokenizer (the
regex split before BPE), which it cannot read from the JSON; llama.cpp identifies it by
hashing the tokenization of a fixed probe text, and so do we, with a table of the
tokenizers of the architectures we export. SentencePiece (``tokenizer.model``): pieces,
scores and types come from the model file.

Special token ids, merges and the chat template come from gguf-py's ``SpecialVocab``.
Whether the tokenizer adds BOS/EOS is *measured* on the HF tokenizer, so llama.cpp's
``add_bos`` matches what transformers does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import gguf
from gguf import TokenType

from release.core.quiet import held_stderr

# llama.cpp's probe text (convert_hf_to_gguf_update.py): whitespace runs, emoji, digits,
# scripts and contractions, so that every pre-tokenizer splits it differently.
PROBE_TEXT = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? "
    "'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)

# sha256 of str(token ids of PROBE_TEXT) -> llama.cpp's pre-tokenizer name.
PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",
    "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
}


class UnknownTokenizer(ValueError):
    """The tokenizer is of a kind, or a pre-tokenizer, the built-in exporter lacks."""


@dataclass(frozen=True)
class Vocab:
    model: str
    """``tokenizer.ggml.model``: "gpt2" (byte-level BPE), "llama" (SentencePiece) or
    "gemma4" (Gemma 4's BPE with byte fallback)."""
    pre: str | None
    """``tokenizer.ggml.pre``; None: not written (gemma4 has none)."""
    tokens: list[bytes]
    types: list[int]
    special: gguf.SpecialVocab
    """Special ids, merges, add_bos/add_eos (measured) and the chat template."""
    scores: list[float] | None = None
    add_space_prefix: bool | None = None
    """``tokenizer.ggml.add_space_prefix`` where the tokenizer model says it."""
    add_bos: bool | None = None
    """``tokenizer.ggml.add_bos_token`` whatever the tokenizer's files say (gemma4)."""


def read_vocab(model_dir: Path, vocab_size: int) -> Vocab:
    """The vocabulary of the tokenizer saved in ``model_dir``, padded to ``vocab_size``
    (the embedding rows) with unused tokens."""
    if _is_byte_level_bpe(model_dir / "tokenizer.json"):
        return _bpe_vocab(model_dir, vocab_size)
    if (model_dir / "tokenizer.model").is_file():
        return _sentencepiece_vocab(model_dir, vocab_size)
    raise UnknownTokenizer(
        f"{model_dir}: neither a byte-level BPE tokenizer.json nor a SentencePiece tokenizer.model"
    )


def write_vocab(writer: gguf.GGUFWriter, vocab: Vocab) -> None:
    """Tokenizer keys, special ids, add_bos/add_eos and the chat template."""
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre is not None:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    add_bos_later = vocab.add_bos is not None and "bos" not in vocab.special.add_special_token
    if vocab.add_bos is not None and not add_bos_later:
        vocab.special.add_special_token["bos"] = vocab.add_bos  # in the files' place
    vocab.special.add_to_gguf(writer, quiet=True)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    if add_bos_later:
        writer.add_add_bos_token(bool(vocab.add_bos))


GEMMA4_VISIBLE = ("<|channel>", "<channel|>", "<|tool_call>", "<tool_call|>")
GEMMA4_VISIBLE += ("<|tool_response>", "<tool_response|>", '<|"|>')
"""Gemma 4's chat tokens llama.cpp must print (its chat parser reads them): stored as
user-defined, not control, tokens, as llama.cpp's converter stores them."""


def gemma4_vocab(model_dir: Path, vocab_size: int) -> Vocab:
    """Gemma 4's tokenizer (BPE with byte fallback in tokenizer.json) as llama.cpp's
    ``gemma4`` tokenizer model: pieces, scores and types from gguf-py's LlamaHfVocab
    (over transformers' tokenizer), merges and special ids from SpecialVocab, no space
    prefix, BOS always added. ``vocab_size`` is not a padding target here: the
    converter writes the tokenizer's own tokens, and the exporter drops embedding rows
    past them."""
    try:
        with held_stderr():  # gguf-py's SpecialVocab warns of the pair template's <bos>
            hf_vocab = gguf.LlamaHfVocab(model_dir)
            special = gguf.SpecialVocab(model_dir, load_merges=True)
    except (FileNotFoundError, TypeError, OSError, ValueError) as exc:
        raise UnknownTokenizer(f"{model_dir}: not a Gemma 4 tokenizer.json ({exc})") from None
    tokens: list[bytes] = []
    scores: list[float] = []
    types: list[int] = []
    for text, score, kind in hf_vocab.all_tokens():
        tokens.append(text)
        scores.append(score)
        visible = text.decode() in GEMMA4_VISIBLE
        types.append(TokenType.USER_DEFINED if visible else kind)
    return Vocab(
        "gemma4", None, tokens, types, special, scores, add_space_prefix=False, add_bos=True
    )


def _is_byte_level_bpe(path: Path) -> bool:
    if not path.is_file():
        return False
    data = json.loads(path.read_text(encoding="utf-8"))
    model, decoder = data.get("model") or {}, data.get("decoder") or {}
    return (
        model.get("type") == "BPE"
        and not model.get("byte_fallback", False)
        and decoder.get("type") == "ByteLevel"
    )


def _looks_special(text: str) -> bool:
    """Added tokens some tokenizers forget to mark special (``<|im_start|>``…)."""
    return (text.startswith("<|") and text.endswith("|>")) or text in ("<pad>", "<mask>")


def _bpe_vocab(model_dir: Path, vocab_size: int) -> Vocab:
    """From tokenizer.json with the ``tokenizers`` library alone: transformers would
    import torch, and the exporter needs neither."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    digest = sha256(str(tokenizer.encode(PROBE_TEXT).ids).encode()).hexdigest()
    pre = PRE_TOKENIZERS.get(digest)
    if pre is None:
        raise UnknownTokenizer(
            f"{model_dir}: BPE pre-tokenizer not recognised (probe hash {digest[:16]}…)"
        )
    by_id = {index: text for text, index in tokenizer.get_vocab(with_added_tokens=True).items()}
    added = tokenizer.get_added_tokens_decoder()
    tokens: list[bytes] = []
    types: list[int] = []
    for index in range(vocab_size):
        text = by_id.get(index)
        if text is None:
            tokens.append(f"[PAD{index}]".encode())
            types.append(TokenType.UNUSED)
            continue
        if index in added:
            special = added[index].special or _looks_special(text)
            types.append(TokenType.CONTROL if special else TokenType.USER_DEFINED)
        else:
            types.append(TokenType.NORMAL)
        tokens.append(text.encode())
    config = _tokenizer_config(model_dir)
    ids = tokenizer.encode("hello").ids
    measured = {
        kind: bool(ids) and ids[position] == tokenizer.token_to_id(token)
        for kind, position in (("bos", 0), ("eos", -1))
        if (token := _token_text(config.get(f"{kind}_token"))) is not None
    }
    return Vocab("gpt2", pre, tokens, types, _special(model_dir, measured, vocab_size, True))


def _token_text(entry: str | dict | None) -> str | None:
    return entry.get("content") if isinstance(entry, dict) else entry


def _sentencepiece_vocab(model_dir: Path, vocab_size: int) -> Vocab:
    from sentencepiece import SentencePieceProcessor
    from transformers import AutoTokenizer

    processor = SentencePieceProcessor()
    processor.LoadFromFile(str(model_dir / "tokenizer.model"))
    tokens = [f"[PAD{index}]".encode() for index in range(vocab_size)]
    scores = [-10000.0] * vocab_size
    types = [int(TokenType.UNUSED)] * vocab_size
    for index in range(min(processor.vocab_size(), vocab_size)):
        tokens[index] = processor.IdToPiece(index).encode()
        scores[index] = processor.GetScore(index)
        types[index] = _piece_type(processor, index)
    for index, entry in _added_tokens(model_dir).items():
        if index >= vocab_size:
            continue
        text = entry["content"]
        special = entry.get("special") or _looks_special(text)
        tokens[index] = (text if special else text.replace("▁", " ")).encode()
        scores[index] = -1000.0
        types[index] = TokenType.CONTROL if special else TokenType.USER_DEFINED
    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (ValueError, ImportError, OSError) as exc:
        # without tokenizer.json, transformers converts tokenizer.model with protobuf
        raise UnknownTokenizer(
            f"{model_dir}: transformers cannot load this SentencePiece tokenizer "
            f"({str(exc).splitlines()[0]}); `pip install protobuf` may let it"
        ) from exc
    special = _special(model_dir, _measured_add_special(hf_tokenizer), vocab_size, False)
    return Vocab("llama", "default", tokens, types, special, scores)


def _added_tokens(model_dir: Path) -> dict[int, dict]:
    """Tokens the HF tokenizer adds over the pieces: id -> {"content", "special"…}.

    transformers 4 listed them in tokenizer_config.json's ``added_tokens_decoder`` (where
    llama.cpp's converter looks); transformers 5 saves them in tokenizer.json only, so a
    fine-tune's ``<|im_start|>`` would otherwise become an unused ``[PAD]`` row."""
    path = model_dir / "tokenizer.json"
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    added = {entry["id"]: entry for entry in saved.get("added_tokens") or []}
    decoder = _tokenizer_config(model_dir).get("added_tokens_decoder") or {}
    return added | {int(key): entry for key, entry in decoder.items()}


def _piece_type(processor, index: int) -> int:
    for test, kind in (
        (processor.IsUnknown, TokenType.UNKNOWN),
        (processor.IsControl, TokenType.CONTROL),
        (processor.IsUnused, TokenType.UNUSED),
        (processor.IsByte, TokenType.BYTE),
    ):
        if test(index):
            return kind
    return TokenType.NORMAL


def _tokenizer_config(model_dir: Path) -> dict:
    path = model_dir / "tokenizer_config.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _special(
    model_dir: Path, add_special: dict[str, bool], vocab_size: int, merges: bool
) -> gguf.SpecialVocab:
    special = gguf.SpecialVocab(model_dir, load_merges=merges, n_vocab=vocab_size)
    special.add_special_token.update(add_special)
    return special


def _measured_add_special(tokenizer) -> dict[str, bool]:
    """Does the HF tokenizer put BOS first / EOS last? Asked, not guessed."""
    ids = tokenizer.encode("hello")
    measured = {}
    if tokenizer.bos_token_id is not None:
        measured["bos"] = bool(ids) and ids[0] == tokenizer.bos_token_id
    if tokenizer.eos_token_id is not None:
        measured["eos"] = bool(ids) and ids[-1] == tokenizer.eos_token_id
    return measured
