"""The streaming exporter: HF safetensors in, one GGUF file out, one tensor in memory.

GGUF puts every tensor's name, shape, type and offset in the header, before the data.
We know all of them from the safetensors headers alone (a tensor's stored size follows
from its shape and type), so the header is written first, from a plan, and the tensors
follow one by one: load, permute if the architecture wants it, quantize, write, drop.
Peak memory is the largest tensor in float32, whatever the model's size.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from release.checkpoint.config import read_config, text_config
from release.checkpoint.safetensors import TensorInfo
from release.gguf.architectures import (
    Architecture,
    find_architecture,
    permute_rows,
    unsupported_reason,
    write_hparams,
)
from release.gguf.formats import FORMATS, GGUFFormat, storage_type
from release.gguf.metadata import ReleaseMetadata, write_metadata
from release.gguf.sizes import stored_nbytes
from release.gguf.source import iter_loaded, list_tensors
from release.gguf.vocab import UnknownTokenizer, Vocab, read_vocab, write_vocab

# Buffers transformers may save that are not weights.
_NOT_WEIGHTS = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")


class UnsupportedModel(ValueError):
    """The built-in exporter cannot write this model (architecture or tokenizer)."""


class UnwritableModel(UnsupportedModel):
    """The architecture is built in, but this checkpoint has a tensor or a tokenizer the
    exporter cannot name: refused, rather than handed to llama.cpp's converter unasked."""


class UnmappedTensor(ValueError):
    """A checkpoint tensor with no GGUF name for this architecture."""


@dataclass(frozen=True)
class PlannedTensor:
    source: TensorInfo
    name: str
    qtype: gguf.GGMLQuantizationType
    heads: int | None
    """Permute rows for this many heads (q/k of a llama-style model), or None."""
    offset: float = 0.0
    """Added to every value (the architecture's norm offset, on norm weights)."""


def plan_tensors(
    model_dir: Path, config: dict, arch: Architecture, fmt: GGUFFormat
) -> list[PlannedTensor]:
    names = gguf.get_tensor_name_map(arch.arch, config["num_hidden_layers"])
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_head)
    planned = []
    for source in list_tensors(model_dir):
        if source.name.endswith(_NOT_WEIGHTS):
            continue
        name = names.get_name(source.name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UnmappedTensor(f"{source.name}: no GGUF name in {arch.name}")
        heads = None
        if arch.permute_qk and source.name.endswith(("q_proj.weight", "q_proj.bias")):
            heads = n_head
        elif arch.permute_qk and source.name.endswith(("k_proj.weight", "k_proj.bias")):
            heads = n_kv
        offset = arch.norm_offset if source.name.endswith("norm.weight") else 0.0
        qtype = storage_type(fmt, name, source.shape)
        planned.append(PlannedTensor(source, name, qtype, heads, offset))
    return planned


@dataclass(frozen=True)
class ExportSource:
    """What every file of a release shares: the model folder, its config, its registry
    entry and its tokenizer, read once."""

    model_dir: Path
    config: dict
    arch: Architecture
    vocab: Vocab


def open_source(model_dir: Path) -> ExportSource:
    """Raise UnsupportedModel when the built-in exporter cannot write ``model_dir``
    (architecture, a tensor it cannot name, or the tokenizer), before any work."""
    config = text_config(read_config(model_dir))
    problem = unsupported_reason(config)
    arch = find_architecture(config)
    if problem or arch is None:
        raise UnsupportedModel(problem or "not built in")
    try:
        plan_tensors(model_dir, config, arch, FORMATS["f16"])
        vocab = read_vocab(model_dir, config["vocab_size"])
    except (UnmappedTensor, UnknownTokenizer) as exc:
        raise UnwritableModel(str(exc).removeprefix(f"{model_dir}: ")) from None
    return ExportSource(model_dir, config, arch, vocab)


def export_gguf(
    source: ExportSource, path: Path, fmt: GGUFFormat, meta: ReleaseMetadata
) -> Generator[tuple[int, int], None, list[PlannedTensor]]:
    """Write ``source`` to ``path`` as ``fmt`` (an in-process type); yields (tensors
    done, total) and returns the layout written."""
    assert fmt.in_process, fmt.name
    config, arch = source.config, source.arch
    planned = plan_tensors(source.model_dir, config, arch, fmt)

    writer = gguf.GGUFWriter(path=None, arch=arch.name)
    write_metadata(writer, meta)
    write_hparams(arch, config, writer)
    writer.add_file_type(fmt.file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    write_vocab(writer, source.vocab)
    if source.vocab.model == "llama" and arch.sentencepiece_space_prefix is not None:
        writer.add_add_space_prefix(arch.sentencepiece_space_prefix)
    for item in planned:
        writer.add_tensor_info(
            item.name,
            item.source.shape,
            np.dtype(np.float32),
            stored_nbytes(item.source.shape, item.qtype),
            raw_dtype=item.qtype,
        )
    writer.add_size_label(gguf.size_label(*writer.get_total_parameter_count()))
    with _naming(path):
        planned = yield from _write(writer, path, planned)
    return planned


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """A failed write() (ENOSPC, EIO) names no file; the error line must say which."""
    try:
        yield
    except OSError as exc:
        exc.filename = exc.filename or str(path)
        raise


def _write(
    writer: gguf.GGUFWriter, path: Path, planned: list[PlannedTensor]
) -> Generator[tuple[int, int], None, list[PlannedTensor]]:
    try:
        writer.write_header_to_file(path=path)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        by_source = {item.source.name: item for item in planned}
        for done, (source, data) in enumerate(
            iter_loaded([item.source for item in planned]), start=1
        ):
            item = by_source[source.name]
            if item.heads is not None:
                data = permute_rows(data, item.heads)
            if item.offset:
                data += np.float32(item.offset)
            writer.write_tensor_data(gguf.quants.quantize(data, item.qtype))
            del data
            yield done, len(planned)
    finally:
        writer.close()
    return planned
