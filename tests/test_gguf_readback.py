"""The read-back's header walk says what gguf-py's GGUFReader says of the same files
(ours, and one llama.cpp's quantizer wrote), and refuses a file cut short in one line."""

from __future__ import annotations

import gguf
import pytest

from release.gguf.formats import FORMATS
from release.gguf.kquant import quantize_with_llama_cpp
from release.gguf.metadata import ReleaseMetadata
from release.gguf.readback import ReadBackMismatch, read_back
from release.gguf.writer import export_gguf, open_source

pytest_plugins = ("tests.support.gguf_fixtures",)


@pytest.fixture(scope="module")
def files(confident_llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("readback")
    paths = []
    for name in ("f16", "q8_0", "q4_0"):
        path = out / f"{name}.gguf"
        for _ in export_gguf(
            open_source(confident_llama_dir), path, FORMATS[name], ReleaseMetadata("tiny", "0.1")
        ):
            pass
        paths.append(path)
    paths.append(out / "q4_k_m.gguf")
    quantize_with_llama_cpp(paths[0], paths[-1], FORMATS["q4_k_m"])
    return paths


def test_the_walk_reads_what_gguf_py_reads(files):
    for path in files:
        found, reader = read_back(path), gguf.GGUFReader(path)
        assert found.tensors == {
            t.name: (tuple(int(n) for n in reversed(t.shape)), t.tensor_type.name)
            for t in reader.tensors
        }
        assert found.keys == set(reader.fields) - {
            "GGUF.version",
            "GGUF.tensor_count",
            "GGUF.kv_count",
        }
        assert found.architecture == reader.get_field("general.architecture").contents() == "llama"
    # (rows 64 wide: the quantizer's q4_k_m falls back to other types, which it names)
    assert {qtype for _, qtype in read_back(files[-1]).tensors.values()} >= {"F32", "Q8_0"}


def test_a_file_cut_short_is_one_line(files, tmp_path):
    data = files[0].read_bytes()
    for cut, says in ((len(data) - 1, "tensor data runs past"), (4096, "header runs past")):
        short = tmp_path / "short.gguf"
        short.write_bytes(data[:cut])
        with pytest.raises(ReadBackMismatch, match=says) as raised:
            read_back(short)
        assert str(raised.value).startswith("short.gguf: ") and "\n" not in str(raised.value)
