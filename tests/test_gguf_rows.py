"""A large matrix is written a block of rows at a time, to the same bytes.

The exporter holds a matrix larger than ``writer.ROWS_BYTES`` in float32 a block of rows
at a time (Gemma-4-E4B's per-layer embedding table is 11 GB in float32). Quantization
runs along rows, so the file must be the one written from whole tensors: here every
matrix of the tiny models goes by rows (a block of 4 KiB) and the files are compared
byte for byte with the default's, where none does. SmolLM2's embedding (113 MB in
float32) goes by rows at the default block, and its file is compared with llama.cpp's
converter's in ``test_gguf_llama_cpp``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from release.core.relay import finish
from release.gguf import writer
from release.gguf.formats import FORMATS
from release.gguf.metadata import ReleaseMetadata
from release.gguf.writer import by_rows, export_gguf, open_source


def _export(model_dir: Path, target: Path, type_name: str) -> list:
    meta = ReleaseMetadata("t", "1")
    return finish(export_gguf(open_source(model_dir), target, FORMATS[type_name], meta))


@pytest.mark.parametrize("type_name", ["f16", "bf16", "q8_0"])
@pytest.mark.parametrize("model", ["tiny_llama_dir", "gemma4_text_dir"])
def test_rows_give_the_whole_tensors_bytes(model, type_name, request, tmp_path, monkeypatch):
    model_dir = request.getfixturevalue(model)
    whole = tmp_path / "whole.gguf"
    assert not any(by_rows(item) for item in _export(model_dir, whole, type_name))

    monkeypatch.setattr(writer, "ROWS_BYTES", 4096)
    rows = tmp_path / "rows.gguf"
    matrices = [item for item in _export(model_dir, rows, type_name) if by_rows(item)]
    assert len(matrices) >= 5  # the embedding among them, in many blocks
    assert max(item.shape[0] * item.shape[1] for item in matrices) * 4 > 10 * 4096
    assert rows.read_bytes() == whole.read_bytes()
