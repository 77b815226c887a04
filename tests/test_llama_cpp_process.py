"""llama.cpp in a child process: a file it cannot load, or a layout it aborts on with
GGML_ASSERT, is a one-line error, and the release's own process lives on. One child
checks all of a stage's files, each as a child of its own would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from release.gguf.delegate import convert_with_llama_cpp
from release.gguf.formats import FORMATS
from release.gguf.llama_cpp_process import LlamaCppChild, LlamaCppCrashed, Request, run_llama_cpp
from release.gguf.metadata import ReleaseMetadata
from release.gguf.pinned import runtime_knows
from release.gguf.writer import export_gguf, open_source
from tests.support.gemma4_models import make_gemma4_multimodal

pytest_plugins = ("tests.support.gguf_fixtures",)  # converter_dir: the pinned converter


def _request(path: Path, mmproj: Path | None = None) -> Request:
    return Request(
        path=str(path),
        prompts=[[2, 300, 301]],
        texts=["x"],
        smoke_ids=[2, 300],
        smoke_tokens=2,
        mmproj=str(mmproj) if mmproj else None,
    )


def test_a_file_llama_cpp_cannot_load_is_one_line(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))

    with pytest.raises(LlamaCppCrashed) as raised:
        run_llama_cpp(_request(broken))

    message = str(raised.value)
    assert message.startswith("llama.cpp failed (exit 1): ") and "\n" not in message


def test_one_child_checks_each_file_as_a_child_of_its_own(confident_llama_dir, tmp_path):
    """The stage's one child loads each file in turn; a file that kills it is one line,
    and the next file gets a fresh child."""
    files = {}
    for name in ("f16", "q8_0"):
        files[name] = tmp_path / f"{name}.gguf"
        source = open_source(confident_llama_dir)
        for _ in export_gguf(source, files[name], FORMATS[name], ReleaseMetadata("tiny", "0.1")):
            pass
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))

    with LlamaCppChild() as child:
        f16, q8 = child.run(_request(files["f16"])), child.run(_request(files["q8_0"]))
        with pytest.raises(LlamaCppCrashed) as raised:
            child.run(_request(broken))
        after = child.run(_request(files["f16"]))
    alone = run_llama_cpp(_request(files["q8_0"]))

    assert np.array_equal(q8.logits[0], alone.logits[0]) and q8.answer == alone.answer
    assert not np.array_equal(f16.logits[0], q8.logits[0])  # each file, not the first again
    message = str(raised.value)
    assert message.startswith("llama.cpp failed (exit 1): ") and "\n" not in message
    assert np.array_equal(after.logits[0], f16.logits[0]) and after.answer == f16.answer


def test_a_ggml_assert_abort_is_one_line(converter_dir, tmp_path):
    """An audio tower narrower than llama.cpp's audio graph assumes (subsampling
    channels 8, 4): its multimodal loader aborts the process on GGML_ASSERT."""
    model = make_gemma4_multimodal(tmp_path / "model", audio={"subsampling_conv_channels": [8, 4]})
    meta = ReleaseMetadata("tiny", "0.1")
    script = converter_dir / "convert_hf_to_gguf.py"
    text, projector = tmp_path / "text.gguf", tmp_path / "mmproj.gguf"
    convert_with_llama_cpp(script, model, text, "f16", meta)
    convert_with_llama_cpp(script, model, projector, "f16", meta, mmproj=True)

    with pytest.raises(LlamaCppCrashed) as raised:
        run_llama_cpp(_request(text, projector))

    message = str(raised.value)
    assert message.startswith("llama.cpp crashed (SIGABRT): ") and "\n" not in message
    assert "GGML_ASSERT" in message


def test_the_runtime_names_the_architectures_it_loads():
    assert runtime_knows("gemma4") and runtime_knows("llama") and runtime_knows("bert")
    assert runtime_knows("gemma99") is False
