"""A Llama with a SentencePiece tokenizer (``tokenizer.ggml.model`` "llama"), as Llama 2
and Mistral 7B v0.1 fine-tunes have, through the GGUF stage, and checked against what we
did not write: llama.cpp's converter (the same bytes), sentencepiece itself (the same
pieces and scores), and llama.cpp's tokenizer (the same token ids as transformers and
sentencepiece)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import pytest
from gguf import TokenType

from release.gguf.formats import FORMATS
from release.gguf.metadata import ReleaseMetadata
from release.gguf.writer import export_gguf, open_source
from tests.support.gguf_helpers import gguf_context, llama_cpp_convert, run_gguf_stage
from tests.support.spm_models import ADDED, CHATML, make_spm_llama

pytest_plugins = ("tests.support.gguf_fixtures",)
TYPES = ("f16", "q8_0")

PROBES = (
    "Hello world, how are you today?",
    "166 °F = 74.4 °C (°C = (°F − 32) × 5/9)",  # pieces beyond ASCII
    "Привет, 世界! 🦙 ﬁ",  # none of it in the training text: byte fallback
    "naïve café — “quotes”… ½",
    "tabs\tand\nnewlines\n\n  double  spaces  and trailing   ",
    "1234567 km² x\r\ny\x00z",
    "",
)
LEADING_SPACE = (" leading space", "\n newline first", "   three")
"""Text that starts with a space: sentencepiece adds its dummy prefix to it and so does
llama.cpp, transformers 5's Metaspace does not; likewise text after a special token
(llama.cpp issue 23840), which GGUF has no key for. Compared with sentencepiece only."""


def _fields(reader: gguf.GGUFReader, prefix: str) -> dict[str, object]:
    keys = [key for key in reader.fields if key.startswith(prefix)]
    return {key: reader.get_field(key).contents() for key in keys}


@pytest.fixture(scope="module")
def spm_llama(tmp_path_factory) -> Path:
    return make_spm_llama(tmp_path_factory.mktemp("spm-llama"))


@pytest.fixture(scope="module")
def staged(spm_llama, tmp_path_factory) -> tuple[dict, dict[str, Path]]:
    """The GGUF stage's facts, and its files by type."""
    ctx = gguf_context(spm_llama, tmp_path_factory.mktemp("spm-stage"), types=list(TYPES))
    output, _ = run_gguf_stage(ctx)
    files = {name: ctx.out_dir / f"demo-{name.upper()}.gguf" for name in TYPES}
    return output.facts.as_json(), files


def test_the_stage_exports_and_verifies_a_sentencepiece_llama(staged):
    facts, files = staged
    assert [record["name"] for record in facts["files"]] == [path.name for path in files.values()]
    for record in facts["files"]:
        assert record["exporter"] == "built-in"
        assert record["tokenizer_agreement"] is True
        for loader, agreement in record["confident_top1_agreement"].items():
            assert agreement >= FORMATS[record["type"]].min_top1, (record["name"], loader)


@pytest.mark.parametrize("name", TYPES)
def test_every_tensor_and_tokenizer_key_match_llama_cpp_converter(
    staged, spm_llama, converter_dir, tmp_path, name
):
    ours = gguf.GGUFReader(staged[1][name])
    theirs = gguf.GGUFReader(llama_cpp_convert(converter_dir, spm_llama, tmp_path / "t.gguf", name))
    theirs_by_name = {t.name: t for t in theirs.tensors}
    assert sorted(t.name for t in ours.tensors) == sorted(theirs_by_name)
    for tensor in ours.tensors:
        other = theirs_by_name[tensor.name]
        assert tensor.tensor_type == other.tensor_type, tensor.name
        assert tensor.data.tobytes() == other.data.tobytes(), tensor.name
    reference = _fields(theirs, "tokenizer.") | _fields(theirs, "llama.")
    assert {"tokenizer.ggml.scores", "tokenizer.chat_template"} <= reference.keys()
    assert {key: _fields(ours, key)[key] for key in reference} == reference


def test_gguf_py_reads_the_pieces_sentencepiece_has(staged, spm_llama):
    from sentencepiece import SentencePieceProcessor

    processor = SentencePieceProcessor(model_file=str(spm_llama / "tokenizer.model"))
    fields = _fields(gguf.GGUFReader(staged[1]["f16"]), "tokenizer.")
    tokens, scores = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.scores"]
    types = fields["tokenizer.ggml.token_type"]
    assert fields["tokenizer.ggml.model"] == "llama" and fields["tokenizer.ggml.pre"] == "default"
    rows = json.loads((spm_llama / "config.json").read_text())["vocab_size"]
    assert len(tokens) == len(scores) == len(types) == rows == 640
    pieces = processor.vocab_size()
    assert pieces == 600
    for index in range(3, pieces):  # 0-2 are special in tokenizer_config.json: CONTROL
        assert tokens[index] == processor.IdToPiece(index), index
        assert scores[index] == processor.GetScore(index), index
        assert types[index] == (TokenType.BYTE if processor.IsByte(index) else TokenType.NORMAL)
    assert types.count(TokenType.BYTE) == 256 and tokens[3:5] == ["<0x00>", "<0x01>"]
    added = {tokens[pieces + i]: types[pieces + i] for i in range(len(ADDED))}
    assert added == {
        text: TokenType.CONTROL if special else TokenType.USER_DEFINED
        for text, special in ADDED.items()
    }
    padding = range(pieces + len(ADDED), rows)
    assert [tokens[i] for i in padding] == [f"[PAD{i}]" for i in padding]
    assert {types[i] for i in padding} == {TokenType.UNUSED}
    assert (fields["tokenizer.ggml.bos_token_id"], fields["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert fields["tokenizer.ggml.unknown_token_id"] == 0
    assert fields["tokenizer.ggml.add_bos_token"] is True
    assert fields["tokenizer.ggml.add_eos_token"] is False
    assert fields["tokenizer.chat_template"] == CHATML


def test_llama_cpp_tokenizes_like_transformers_and_sentencepiece(staged, spm_llama):
    import llama_cpp
    from sentencepiece import SentencePieceProcessor
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(spm_llama)
    processor = SentencePieceProcessor(model_file=str(spm_llama / "tokenizer.model"))
    llm = llama_cpp.Llama(str(staged[1]["f16"]), vocab_only=True, verbose=False)
    try:
        for text in PROBES:
            ids = llm.tokenize(text.encode(), add_bos=True, special=False)
            assert ids == hf.encode(text) == [1, *processor.encode(text)], text
            dummy_prefix = " " if text else ""  # llama.cpp's detokenize leaves it
            assert llm.detokenize(ids[1:]) == (dummy_prefix + text).encode(), text
        assert any(processor.IsByte(i) for i in processor.encode(PROBES[2]))
        for text in LEADING_SPACE:
            ids = llm.tokenize(text.encode(), add_bos=True, special=False)
            assert ids == [1, *processor.encode(text)], text
        messages = [
            {"role": "user", "content": "Convert 166 °F to Celsius: <calc>(166 − 32) × 5/9"},
            {"role": "assistant", "content": "166 °F = 74.4 °C.\n\nПривет 🦙"},
        ]
        chat = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = hf.encode(chat)
        assert {600, 601, 602} <= set(ids)  # <|im_start|>, <|im_end|>, <calc>
        assert llm.tokenize(chat.encode(), add_bos=True, special=True) == ids
    finally:
        llm.close()


def test_added_tokens_saved_by_transformers_5_reach_the_gguf(staged, spm_llama, tmp_path):
    """transformers 5 saves added tokens in tokenizer.json alone, not in
    tokenizer_config.json's ``added_tokens_decoder``: the file must not change."""
    model_dir = shutil.copytree(spm_llama, tmp_path / "model")
    config_file = model_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    del config["added_tokens_decoder"]
    config_file.write_text(json.dumps(config))
    ours = tmp_path / "ours.gguf"
    for _ in export_gguf(open_source(model_dir), ours, FORMATS["f16"], ReleaseMetadata("t", "1")):
        pass
    fields = _fields(gguf.GGUFReader(ours), "tokenizer.")
    assert fields["tokenizer.ggml.tokens"][600:603] == list(ADDED)
    assert fields == _fields(gguf.GGUFReader(staged[1]["f16"]), "tokenizer.")


def test_a_tokenizer_model_transformers_cannot_read_is_an_unknown_tokenizer(spm_llama, tmp_path):
    """Without tokenizer.json, transformers converts tokenizer.model with protobuf; when
    that is missing the exporter says so (and the stage hands the file to llama.cpp's
    converter) instead of crashing on transformers' ValueError."""
    from release.gguf.vocab import UnknownTokenizer, read_vocab

    model_dir = shutil.copytree(spm_llama, tmp_path / "model")
    (model_dir / "tokenizer.json").unlink()
    vocab_size = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    try:
        import google.protobuf  # noqa: F401
    except ImportError:
        with pytest.raises(UnknownTokenizer, match="pip install protobuf"):
            read_vocab(model_dir, vocab_size)
    else:  # transformers can convert it: the same pieces as from the full folder
        assert read_vocab(model_dir, vocab_size).tokens == read_vocab(spm_llama, vocab_size).tokens
