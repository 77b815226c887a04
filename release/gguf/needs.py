"""What a GGUF export will write and hold at its peak, before it starts (the preflight).

Each requested file is planned tensor by tensor at the type it will be stored in (the
exporter's own plan; K-quants: the type llama.cpp's quantizer will choose, its mixes and
fallbacks, ``kquant_types``), each padded to the alignment, after a header measured
exactly: the exporter's own header writer, with the release's keys and the tokenizer,
written to a scratch file (``sizes.header_nbytes``); llama.cpp's quantizer keeps that
header. A file llama.cpp's converter writes (a model not built in, a multimodal
checkpoint's projector) is measured by that converter, run to the end of its plan
(``converter_plan``); without it (or for its K-quants) it is planned from the checkpoint
under llama.cpp's tensor names, its tokenizer file standing in for the metadata.
A hidden f16 source is added when the release asks for K-quants but not for f16.
Memory: the largest file llama.cpp maps while the next is written, the merged model
where this stage computes its own reference, or lm-eval's child on a file where the
release runs its tasks on the files (``peak``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gguf
from gguf import GGMLQuantizationType

from release.checkpoint.config import read_config, text_config
from release.checkpoint.safetensors import checkpoint_dtype, parameter_counts
from release.core.units import human
from release.gguf.architectures import gguf_arch, unsupported_reason
from release.gguf.converter_plan import PlanFailed, converter_file_bytes
from release.gguf.delegate import CONVERTER_TYPES, ConverterMissing, find_converter
from release.gguf.formats import FORMATS, storage_type
from release.gguf.kquant import llama_cpp_version
from release.gguf.kquant_types import kquant_tensor_type
from release.gguf.metadata import ReleaseMetadata
from release.gguf.peak import ModelShape, Written, stage_peak
from release.gguf.projector import is_tower_tensor, towers
from release.gguf.sizes import (
    aligned,
    header_nbytes,
    stored_nbytes,
    tensor_header_bytes,
    tokenizer_json_bytes,
)
from release.gguf.source import list_tensors
from release.gguf.writer import (
    ExportSource,
    UnsupportedModel,
    header_writer,
    held_elements,
    open_source,
    plan_tensors,
)
from release.preflight import Needs

_SUFFIXES = (".weight", ".bias")
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


RELEASE_KEYS_ALLOWANCE = 1024
"""Bytes allowed for the release's header keys (name, version, license, base model,
tags, pins) where the caller does not say them (the wizard's type pane)."""


def gguf_file_bytes(
    model_dir: Path,
    types: Iterable[str],
    meta: ReleaseMetadata | None = None,
    converter: Path | None = None,
) -> dict[str, int]:
    """Each GGUF type's estimated file size for the merged model in ``model_dir``: every
    tensor at the type it will be stored in (K-quants: the type llama.cpp's quantizer
    will pick, ``kquant_types``) and padded to the alignment, after the header: exact
    for the built-in exporter's files given the release's ``meta``, else with
    ``RELEASE_KEYS_ALLOWANCE`` for its keys. With ``meta`` and the ``converter`` script,
    the types llama.cpp's converter writes itself are measured by it
    (``converter_plan``)."""
    config = text_config(read_config(model_dir))
    source = _source_or_none(model_dir)
    if source is not None:
        metadata = _exact_header(source, meta)
    else:  # llama.cpp's converter writes it, from tokenizer.json
        tokenizer = model_dir / "tokenizer.json"
        metadata = tokenizer_json_bytes(tokenizer) if tokenizer.is_file() else 2**20
    layers = _hparam(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _hparam(config, "num_attention_heads", "n_head")
    gqa = heads // (config.get("num_key_value_heads") or heads or 1)
    tensors = _gguf_tensors(model_dir, config, source, layers)
    tied = all(name != "output.weight" for name, _ in tensors)
    sizes = {}
    for gguf_type in dict.fromkeys(types):
        if source is None and converter and meta and gguf_type in CONVERTER_TYPES:
            with contextlib.suppress(PlanFailed):  # the export will say why
                sizes[gguf_type] = converter_file_bytes(converter, model_dir, gguf_type, meta)
                continue
        fmt = FORMATS[gguf_type]
        total = metadata
        for name, shape in tensors:
            if fmt.in_process:
                qtype = storage_type(fmt, name, shape)
            else:
                source_type = storage_type(FORMATS["f16"], name, shape)
                qtype = kquant_tensor_type(
                    name, shape, gguf_type, layers, source_type=source_type, gqa=gqa, tied=tied
                )
            if source is not None:  # the header counted every tensor's entry
                total += aligned(stored_nbytes(shape, qtype))
            else:
                total += stored_nbytes(shape, qtype) + tensor_header_bytes(name, shape)
        sizes[gguf_type] = total
    return sizes


def _exact_header(source: ExportSource, meta: ReleaseMetadata | None) -> int:
    """The bytes before the first tensor's data in the exporter's file (one size for
    every in-process type: the keys and tensor infos differ only in values)."""
    fmt = FORMATS["f16"]
    planned = plan_tensors(source.model_dir, source.config, source.arch, fmt)
    if meta is None:
        header = header_nbytes(header_writer(source, fmt, ReleaseMetadata("", ""), planned))
        return aligned(header + RELEASE_KEYS_ALLOWANCE)
    return aligned(header_nbytes(header_writer(source, fmt, meta, planned)))


def _converter(model_dir: Path, llama_cpp_dir: Path | None) -> Path | None:
    """The converter that will write some of the files (the projector, or a model not
    built in), or None: none will, or it is not there (the export will say so)."""
    built_in = unsupported_reason(text_config(read_config(model_dir))) is None
    if built_in and not towers(model_dir):
        return None
    try:
        return find_converter(llama_cpp_dir).script
    except ConverterMissing:
        return None


def _hparam(config: dict[str, Any], *spellings: str) -> int:
    return next((int(config[key]) for key in spellings if config.get(key)), 0)


def _gguf_tensors(
    model_dir: Path, config: dict[str, Any], source: Any, layers: int
) -> list[tuple[str, tuple[int, ...]]]:
    """Each tensor's GGUF name and shape: the built-in exporter's plan, or for a model
    llama.cpp's converter writes, the checkpoint's tensors under the GGUF names of the
    architecture named like its ``model_type`` (else llama's), where they have one: the
    names llama.cpp's quantizer chooses types by."""
    if source is not None:
        planned = plan_tensors(model_dir, source.config, source.arch, FORMATS["f16"])
        return [(p.name, p.shape) for p in planned]
    arch = gguf_arch(config) or gguf.MODEL_ARCH.LLAMA
    names = gguf.get_tensor_name_map(arch, layers)
    return [  # a multimodal wrapper's text model is written as the bare model's
        (
            names.get_name(t.name.replace(".language_model.", "."), try_suffixes=_SUFFIXES)
            or t.name,
            t.shape,
        )
        for t in list_tensors(model_dir)
        if not is_tower_tensor(t.name)
    ]


def projector_file_bytes(
    model_dir: Path, meta: ReleaseMetadata | None = None, converter: Path | None = None
) -> int:
    """The projector GGUF of a multimodal checkpoint's towers (``projector``): measured
    by the ``converter`` that writes it, given the release's ``meta``; else estimated:
    f16, but vectors, scalars (as 1-D) and the audio convolutions in f32, as llama.cpp
    writes it, with allowances for its keys and tensor names."""
    if converter and meta:
        with contextlib.suppress(PlanFailed):  # the export will say why
            return converter_file_bytes(converter, model_dir, "f16", meta, mmproj=True)
    total = 4096  # the clip.* keys
    for t in list_tensors(model_dir):
        if is_tower_tensor(t.name):
            # llama.cpp's tensor_force_quant: the audio convolutions (and the projection
            # after them) and the vision position table stay f32
            audio_conv = "audio" in t.name and (".conv" in t.name or "_conv" in t.name)
            f32 = len(t.shape) <= 1 or audio_conv or "position_embedding_table" in t.name
            qtype = GGMLQuantizationType.F32 if f32 else GGMLQuantizationType.F16
            total += stored_nbytes(t.shape, qtype) + tensor_header_bytes(t.name, t.shape)
    return total


def gguf_needs(
    model_dir: Path,
    types: list[str],
    meta: ReleaseMetadata | None = None,
    llama_cpp_dir: Path | None = None,
    *,
    reference_here: bool = True,
    benchmarked: list[str] | None = None,
) -> Needs:
    """The GGUF files a release asks for (and a hidden f16 source the quantizer needs);
    ``meta``: the release's header keys; ``llama_cpp_dir``: the spec's converter;
    ``reference_here``: the stage computes the merged model's reference itself (the
    evaluate stage kept none); ``benchmarked``: the types whose files run eval.tasks
    (eval.tasks.gguf)."""
    types = list(dict.fromkeys(types))
    quantized = [t for t in types if not FORMATS[t].in_process]
    with_source = [*types, "f16"] if quantized and "f16" not in types else types
    converter = _converter(model_dir, llama_cpp_dir) if meta else None
    sizes = gguf_file_bytes(model_dir, with_source, meta, converter)
    projector = projector_file_bytes(model_dir, meta, converter) if towers(model_dir) else 0
    source = _source_or_none(model_dir)
    files = _written(types, sizes, source is None)
    peak = stage_peak(
        files,
        _shape(model_dir, source),
        reference_here=reference_here,
        llama_cpp=llama_cpp_version() is not None,
        benchmarked=tuple(benchmarked or ()),
    )
    listed = ", ".join(f"{t} {human(sizes[t], 'bytes')}" for t in types)
    return Needs(
        what=f"{len(types)} GGUF file{'s' if len(types) > 1 else ''} ({listed})"
        + (f" and an f16 source for {', '.join(quantized)}" if with_source != types else "")
        + (f" and the towers' projector ({human(projector, 'bytes')})" if projector else "")
        + (f", then lm-eval on {', '.join(benchmarked)}" if benchmarked else ""),
        output_bytes=sum(sizes.values()) + projector,
        memory_bytes=peak,
        hint="or choose fewer gguf.types" + (" or eval.tasks.gguf" if benchmarked else ""),
    )


def _source_or_none(model_dir: Path) -> ExportSource | None:
    try:
        return open_source(model_dir)
    except UnsupportedModel:
        return None


def _written(types: list[str], sizes: dict[str, int], delegated: bool) -> list[Written]:
    """The files in the order the stage writes them (``build._jobs``: f16 first, the
    quantizer's types last, a hidden f16 source first of all), with their writers."""
    direct = CONVERTER_TYPES if delegated else tuple(t for t in types if FORMATS[t].in_process)
    writer = "converter" if delegated else "exporter"
    files = [
        Written(t, sizes[t], writer if t in direct else "quantizer", checked=True) for t in types
    ]
    files.sort(key=lambda f: (f.writer == "quantizer", f.type != "f16"))
    if any(f.writer == "quantizer" for f in files) and "f16" not in types:
        files.insert(0, Written("f16", sizes["f16"], writer, checked=False))
    return files


def _shape(model_dir: Path, source: ExportSource | None) -> ModelShape:
    config = text_config(read_config(model_dir))
    parameters, largest = parameter_counts(model_dir)
    exporter = largest
    if source is not None:
        planned = plan_tensors(model_dir, source.config, source.arch, FORMATS["f16"])
        exporter = max((held_elements(item) for item in planned), default=0)
    heads = _hparam(config, "num_attention_heads", "n_head")
    hidden = _hparam(config, "hidden_size", "n_embd", "d_model")
    head_dim = _hparam(config, "head_dim") or (hidden // heads if heads else 0)
    kv_heads = _hparam(config, "num_key_value_heads") or heads
    return ModelShape(
        parameters=parameters,
        largest_tensor=largest,
        exporter_tensor=exporter,
        vocab=_hparam(config, "vocab_size"),
        layers=_hparam(config, "num_hidden_layers", "n_layer", "num_layers"),
        kv_width=2 * kv_heads * head_dim,
        checkpoint_bytes_per_parameter=_DTYPE_BYTES[checkpoint_dtype(model_dir)],
        context=_hparam(config, "max_position_embeddings", "n_positions", "n_ctx"),
    )
