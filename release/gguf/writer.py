"""The streaming exporter: HF safetensors in, one GGUF file out, one tensor in memory.

GGUF puts every tensor's name, shape, type and offset in the header, before the data.
We know all of them from the safetensors headers alone (a tensor's stored size follows
from its shape and type), so the header is written first, from a plan, and the tensors
follow one by one: load, permute if the architecture wants it, quantize, write, drop.
A matrix larger than ``ROWS_BYTES`` in float32 whose rows stay in place goes a block of
rows at a time (quantization runs along rows: the bytes are the same), so Gemma-4-E4B's
2.8B-parameter per-layer embedding table is never held whole (11 GB in float32). Peak
memory is the largest tensor held whole in float32, whatever the model's size.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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
from release.gguf.metadata import ReleaseMetadata, write_metadata, write_sampling
from release.gguf.projector import is_tower_tensor
from release.gguf.sizes import stored_nbytes
from release.gguf.source import iter_loaded, iter_rows, list_tensors
from release.gguf.vocab import UnknownTokenizer, Vocab, write_vocab

ROWS_BYTES = 64 * 2**20
"""float32 bytes of one block of a matrix written by rows (``by_rows``)."""

# Buffers transformers may save that are not weights.
_NOT_WEIGHTS = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")


class UnsupportedModel(ValueError):
    """The built-in exporter cannot write this model (architecture or tokenizer)."""


class UnwritableModel(UnsupportedModel):
    """The architecture is built in, but this checkpoint has a tensor or a tokenizer the
    exporter cannot name: refused, rather than handed to llama.cpp's converter unasked."""


class UnmappedTensor(ValueError):
    """A checkpoint tensor with no GGUF name for this architecture."""


@dataclass(frozen=True, eq=False)
class PlannedTensor:
    name: str
    shape: tuple[int, ...]
    """As written, in numpy order (the checkpoint's, less any rows dropped)."""
    qtype: gguf.GGMLQuantizationType
    source: TensorInfo | None = None
    """The checkpoint tensor; None for one computed from the config (``values``)."""
    values: np.ndarray | None = None
    heads: int | None = None
    """Permute rows for this many heads (q/k of a llama-style model), or None."""
    offset: float = 0.0
    """Added to every value (the architecture's norm offset, on norm weights)."""


def plan_tensors(
    model_dir: Path, config: dict, arch: Architecture, fmt: GGUFFormat
) -> list[PlannedTensor]:
    """Every tensor of the text GGUF in the order llama.cpp's converter writes them:
    the architecture's computed tensors, then the checkpoint's in file order (a
    multimodal checkpoint's towers go to the projector, never here)."""
    names = gguf.get_tensor_name_map(arch.arch, config["num_hidden_layers"])
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_head)
    planned = [
        PlannedTensor(name, values.shape, storage_type(fmt, name, values.shape), values=values)
        for name, values in arch.extra_tensors(config)
    ]
    for source in list_tensors(model_dir):
        if source.name.endswith(_NOT_WEIGHTS) or is_tower_tensor(source.name):
            continue
        # a multimodal wrapper's text model is named as the bare model's
        hf_name = arch.hf_name(source.name.replace("language_model.", ""))
        name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UnmappedTensor(f"{source.name}: no GGUF name in {arch.name}")
        heads = None
        if arch.permute_qk and source.name.endswith(("q_proj.weight", "q_proj.bias")):
            heads = n_head
        elif arch.permute_qk and source.name.endswith(("k_proj.weight", "k_proj.bias")):
            heads = n_kv
        offset = arch.norm_offset if source.name.endswith("norm.weight") else 0.0
        shape = source.shape
        if (rows := arch.kept_rows(model_dir, source.name)) is not None:
            shape = (min(rows, shape[0]), *shape[1:])
        qtype = storage_type(fmt, name, shape)
        planned.append(PlannedTensor(name, shape, qtype, source, None, heads, offset))
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
        vocab = arch.vocab(model_dir, config["vocab_size"])
    except (UnmappedTensor, UnknownTokenizer) as exc:
        raise UnwritableModel(str(exc).removeprefix(f"{model_dir}: ")) from None
    return ExportSource(model_dir, config, arch, vocab)


def by_rows(item: PlannedTensor) -> bool:
    """Whether ``item`` is written a block of rows at a time, not held whole: a checkpoint
    matrix larger than a block whose rows are not permuted."""
    return (
        item.source is not None
        and item.heads is None
        and len(item.shape) == 2
        and 4 * math.prod(item.shape) > ROWS_BYTES
    )


def held_elements(item: PlannedTensor) -> int:
    """The float32 elements writing ``item`` holds at once: a block, or the tensor."""
    if by_rows(item):
        return min(item.shape[0], _block_rows(item)) * item.shape[1]
    return math.prod(item.shape)


def _block_rows(item: PlannedTensor) -> int:
    return max(1, ROWS_BYTES // 4 // item.shape[1])


class _RowBlocks:
    """A matrix as ``GGUFWriter.write_tensor_data`` takes an array (its size and
    ``tofile``), its blocks of rows read, offset and quantized as they are written."""

    def __init__(self, item: PlannedTensor) -> None:
        self.item = item
        self.nbytes = stored_nbytes(item.shape, item.qtype)

    def tofile(self, out: BinaryIO) -> None:
        item = self.item
        assert item.source is not None
        for block in iter_rows(item.source, item.shape[0], _block_rows(item)):
            if item.offset:
                block += np.float32(item.offset)
            gguf.quants.quantize(block, item.qtype).tofile(out)


def export_gguf(
    source: ExportSource, path: Path, fmt: GGUFFormat, meta: ReleaseMetadata
) -> Generator[tuple[int, int], None, list[PlannedTensor]]:
    """Write ``source`` to ``path`` as ``fmt`` (an in-process type); yields (tensors
    done, total) and returns the layout written."""
    assert fmt.in_process, fmt.name
    planned = plan_tensors(source.model_dir, source.config, source.arch, fmt)
    writer = header_writer(source, fmt, meta, planned)
    with _naming(path):
        planned = yield from _write(writer, path, planned)
    return planned


def header_writer(
    source: ExportSource, fmt: GGUFFormat, meta: ReleaseMetadata, planned: list[PlannedTensor]
) -> gguf.GGUFWriter:
    """A GGUFWriter holding every header key and tensor info of the file (no data yet):
    what ``export_gguf`` writes, and what the preflight measures."""
    config, arch = source.config, source.arch
    writer = gguf.GGUFWriter(path=None, arch=arch.name)
    write_metadata(writer, meta)
    write_sampling(writer, source.model_dir)
    write_hparams(arch, config, writer)
    writer.add_file_type(fmt.file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    write_vocab(writer, source.vocab)
    if source.vocab.model == "llama" and arch.sentencepiece_space_prefix is not None:
        writer.add_add_space_prefix(arch.sentencepiece_space_prefix)
    for item in planned:
        writer.add_tensor_info(
            item.name,
            item.shape,
            np.dtype(np.float32),
            stored_nbytes(item.shape, item.qtype),
            raw_dtype=item.qtype,
        )
    writer.add_size_label(gguf.size_label(*writer.get_total_parameter_count()))
    return writer


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
        whole = [item.source for item in planned if item.source is not None and not by_rows(item)]
        with closing(iter_loaded(whole)) as loaded:
            for done, item in enumerate(planned, start=1):
                if by_rows(item):  # in the file's byte order: never byteswapped
                    writer.write_tensor_data(_RowBlocks(item), writer.endianess)  # type: ignore[arg-type]
                else:
                    values = _values(item, loaded)
                    writer.write_tensor_data(gguf.quants.quantize(values, item.qtype))
                yield done, len(planned)
    finally:
        writer.close()
    return planned


def _values(item: PlannedTensor, loaded: Iterator[tuple[TensorInfo, np.ndarray]]) -> np.ndarray:
    """``item``'s float32 values as written: computed, or the next checkpoint tensor
    with its rows cut, permuted and offset as planned."""
    if item.values is not None:
        return item.values
    _, data = next(loaded)
    if data.shape != item.shape:
        data = data[: item.shape[0]]
    if item.heads is not None:
        data = permute_rows(data, item.heads)
    if item.offset:
        data += np.float32(item.offset)
    return data
