"""GGUF size estimates against files that gguf-py writes, and the per-tensor K-quant
estimates against files llama.cpp's quantizer writes: every tensor's type, every size."""

from __future__ import annotations

import ctypes
from pathlib import Path

import gguf
import numpy as np
import pytest

from release.gguf.kquant_types import kquant_tensor_type
from release.gguf.needs import gguf_file_bytes
from release.gguf.sizes import bits_per_weight, estimate_gguf_bytes
from release.spec.quant_types import QUANT_TYPES
from release.spec.schema import GGUF_TYPES


@pytest.mark.parametrize("row", QUANT_TYPES, ids=lambda row: row.name)
def test_each_quant_type_row_agrees_with_gguf_py(row):
    """The table's traits against gguf-py's own: its tensor type's block, its file type,
    and the families by their names (K-quants ``*_K``, i-quants ``IQ*``)."""
    block_size, _ = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[row.ggml_type]]
    assert row.block_size == block_size
    file_type = gguf.LlamaFileType[row.file_type]
    assert file_type.name.endswith(row.name.upper())
    assert row.kquant == row.ggml_type.endswith("_K")
    assert row.iquant == row.ggml_type.startswith("IQ")
    assert not row.embedding_type or gguf.GGMLQuantizationType[row.embedding_type]


def test_every_spec_type_has_an_estimate():
    sizes = estimate_gguf_bytes(1_000_000, GGUF_TYPES)
    assert list(sizes) == list(GGUF_TYPES)
    assert sizes["f32"] == 4_000_000
    assert sizes["f16"] == sizes["bf16"] == 2_000_000
    assert sizes["q8_0"] == 1_062_500  # 34 bytes per block of 32
    assert sizes["q4_k_m"] == 562_500  # 144 bytes per block of 256
    ordered = [sizes[t] for t in ("f32", "f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q2_k")]
    assert ordered == sorted(ordered, reverse=True)


@pytest.mark.parametrize(("gguf_type", "qtype"), [("q8_0", "Q8_0"), ("f16", "F16")])
def test_estimate_matches_a_file_written_by_gguf_py(tmp_path, gguf_type, qtype):
    weights = np.random.default_rng(0).standard_normal((256, 1024)).astype(np.float32)
    kind = gguf.GGMLQuantizationType[qtype]
    data = gguf.quants.quantize(weights, kind)
    path = tmp_path / "m.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("blk.0.ffn_up.weight", data, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    estimate = estimate_gguf_bytes(weights.size, [gguf_type])[gguf_type]
    assert estimate <= path.stat().st_size <= estimate + 1024  # header and alignment
    assert bits_per_weight(gguf_type) == pytest.approx(estimate * 8 / weights.size)


# --- K-quants: against the files llama.cpp's quantizer writes ------------------------

K_QUANTS = ("q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k")


def _quantized(model_dir: Path, out: Path, types: tuple[str, ...]) -> dict[str, Path]:
    """Our f16 file of ``model_dir`` and each of ``types`` quantized from it by llama.cpp."""
    from release.gguf.formats import FORMATS
    from release.gguf.kquant import quantize_with_llama_cpp
    from release.gguf.metadata import ReleaseMetadata
    from release.gguf.writer import export_gguf, open_source

    out.mkdir()
    files = {"f16": out / "f16.gguf"}
    for _ in export_gguf(
        open_source(model_dir), files["f16"], FORMATS["f16"], ReleaseMetadata("m", "1")
    ):
        pass
    for name in types:
        files[name] = out / f"{name}.gguf"
        quantize_with_llama_cpp(files["f16"], files[name], FORMATS[name])
    return files


def llama_cpp_tensor_types(path: Path) -> dict[str, gguf.GGMLQuantizationType]:
    """Each tensor's type in a GGUF file, as ggml's own reader (in llama-cpp-python's
    libggml-base) reads it: the header only, in milliseconds (gguf-py parses the whole
    vocabulary first, seconds a file)."""
    import llama_cpp

    class InitParams(ctypes.Structure):
        _fields_ = (("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p))

    ggml = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    ggml.gguf_init_from_file.restype = ctypes.c_void_p
    ggml.gguf_init_from_file.argtypes = (ctypes.c_char_p, InitParams)
    ggml.gguf_get_n_tensors.argtypes = (ctypes.c_void_p,)
    ggml.gguf_get_n_tensors.restype = ctypes.c_int64
    ggml.gguf_get_tensor_name.argtypes = ggml.gguf_get_tensor_type.argtypes = (
        ctypes.c_void_p,
        ctypes.c_int64,
    )
    ggml.gguf_get_tensor_name.restype = ctypes.c_char_p
    ggml.gguf_free.argtypes = (ctypes.c_void_p,)
    context = ggml.gguf_init_from_file(str(path).encode(), InitParams(True, None))
    assert context, path
    try:
        return {
            ggml.gguf_get_tensor_name(context, i).decode(): gguf.GGMLQuantizationType(
                ggml.gguf_get_tensor_type(context, i)
            )
            for i in range(ggml.gguf_get_n_tensors(context))
        }
    finally:
        ggml.gguf_free(context)


def predicted_types(model_dir: Path, gguf_type: str) -> dict[str, gguf.GGMLQuantizationType]:
    """Each tensor's type in llama.cpp's ``gguf_type`` file of our f16 export."""
    from release.gguf.formats import FORMATS
    from release.gguf.writer import open_source, plan_tensors

    source = open_source(model_dir)
    config = source.config
    planned = plan_tensors(model_dir, config, source.arch, FORMATS["f16"])
    tied = all(p.name != "output.weight" for p in planned)
    return {
        p.name: kquant_tensor_type(
            p.name,
            p.shape,
            gguf_type,
            config["num_hidden_layers"],
            source_type=p.qtype,
            gqa=config["num_attention_heads"] // config["num_key_value_heads"],
            tied=tied,
        )
        for p in planned
    }


@pytest.fixture(scope="module")
def k_quant_models(tiny_llama_dir, smollm2_tokenizer_dir, tmp_path_factory):
    """Two tiny Llamas and their K-quant files: the 64-wide fixture (every row falls back
    to a 32-weight type) and a 256-wide one with 16 layers, a tied head and 4 query
    heads per key/value head (the K-quant blocks fit: the mixes' own rules show)."""
    from transformers import AutoTokenizer

    from tests.support.models import make_tiny_llama

    root = tmp_path_factory.mktemp("k-quants")
    wide = make_tiny_llama(
        root / "wide",
        AutoTokenizer.from_pretrained(smollm2_tokenizer_dir),
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=16,
        num_attention_heads=8,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    models = {}
    for label, model_dir in (("narrow", tiny_llama_dir), ("wide", wide)):
        models[label] = (model_dir, _quantized(model_dir, root / f"{label}-files", K_QUANTS))
    return models


@pytest.mark.parametrize("label", ["narrow", "wide"])
def test_k_quant_estimates_match_llama_cpp_files(k_quant_models, label):
    model_dir, files = k_quant_models[label]
    estimates = gguf_file_bytes(model_dir, K_QUANTS)
    types = {}
    for name in K_QUANTS:
        written = llama_cpp_tensor_types(files[name])
        assert written == predicted_types(model_dir, name)
        real = files[name].stat().st_size
        assert real <= estimates[name] <= real * 1.002, name  # measured: +0.02 to +0.05%
        types[name] = set(written.values())
    Q = gguf.GGMLQuantizationType
    if label == "narrow":  # no row is a whole 256-weight block: nothing is a K type
        assert types["q4_k_m"] == {Q.F32, Q.Q5_0, Q.Q8_0}
    else:  # the bulk type, and the mix's larger ones
        assert types["q4_k_m"] == {Q.F32, Q.Q4_K, Q.Q6_K}
        assert types["q3_k_m"] == {Q.F32, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K}


@pytest.mark.slow
def test_k_quant_estimate_matches_the_demo_release(demo_release):
    """SmolLM2-135M (576 wide: 180 of its 272 tensors fall back) in the demo's q4_k_m,
    which llama.cpp wrote in the session's demo release; and its f16 and q8_0."""
    build = demo_release / "build"
    files = {
        path.name.rsplit("-", 1)[1][: -len(".gguf")].lower(): path
        for path in (build / "gguf").glob("*.gguf")
    }
    assert set(files) == {"f16", "q8_0", "q4_k_m"}
    estimates = gguf_file_bytes(build / "merge", files)
    for name, path in files.items():
        real = path.stat().st_size
        assert real <= estimates[name] <= real * 1.001, name  # measured: +0.004 to +0.011%
    assert llama_cpp_tensor_types(files["q4_k_m"]) == predicted_types(build / "merge", "q4_k_m")
