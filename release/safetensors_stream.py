"""Read and write safetensors files one tensor at a time.

A safetensors file is an 8-byte little-endian header length, a JSON header (name ->
dtype, shape, byte range) and the tensors' raw bytes. Knowing that, a checkpoint can be
listed from its headers alone, a single tensor read with one ``readinto`` of its byte
range, and an output file written tensor by tensor once every tensor's dtype and shape
are known in advance (the header comes first).

We read byte ranges instead of ``safe_open``'s mmap on purpose: pages of a mapped file
stay resident and count toward the process's RSS until the file is closed, so walking a
5 GB shard through mmap can hold 5 GB. A plain read holds one tensor.
"""

from __future__ import annotations

import contextlib
import json
import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from release.errors import InputError
from release.files import atomic_open

if TYPE_CHECKING:
    import torch

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"

DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
# safetensors dtype code <-> the names used in config.json and the spec.
TORCH_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
CODES = {name: code for code, name in TORCH_NAMES.items()}
_HEADER_LIMIT = 100 * 2**20


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor of a checkpoint lives: its file and byte range, dtype and shape."""

    name: str
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute offset in ``file``
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and the offset where tensor data begins."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise InputError(f"{path}: not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", raw)
        if length > _HEADER_LIMIT:
            raise InputError(f"{path}: not a safetensors file (header of {length} bytes)")
        try:
            header = json.loads(handle.read(length))
        except ValueError:
            raise InputError(f"{path}: not a safetensors file (header is not JSON)") from None
    return header, 8 + length


def list_tensors(path: Path) -> list[TensorInfo]:
    """The tensors of one safetensors file, in the order of their bytes."""
    header, data_start = read_header(path)
    tensors = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        tensors.append(
            TensorInfo(
                name, path, entry["dtype"], tuple(entry["shape"]), data_start + begin, end - begin
            )
        )
    return sorted(tensors, key=lambda info: info.start)


def checkpoint_files(folder: Path) -> list[Path]:
    """The safetensors files of a model folder: from its index, else every *.safetensors."""
    index = folder / INDEX_NAME
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        files = [folder / name for name in dict.fromkeys(weight_map.values())]
    else:
        files = sorted(folder.glob("*.safetensors"))
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise InputError(f"{folder}: checkpoint file missing: {missing[0]}")
    return files


def list_checkpoint(folder: Path) -> dict[str, TensorInfo]:
    """Every tensor of a model folder by name, shards in order, each in byte order."""
    files = checkpoint_files(folder)
    if not files:
        raise InputError(
            f"{folder}: no *.safetensors weights",
            hint="point base.path at a model folder saved with safetensors",
        )
    tensors: dict[str, TensorInfo] = {}
    for path in files:
        for info in list_tensors(path):
            tensors[info.name] = info
    return tensors


def read_bytes(handle: BinaryIO, info: TensorInfo, offset: int, size: int) -> bytes:
    handle.seek(info.start + offset)
    return handle.read(size)


def read_tensor(handle: BinaryIO, info: TensorInfo) -> torch.Tensor:
    """One tensor, read with a single ``readinto`` of its byte range."""
    import torch

    buffer = bytearray(info.nbytes)
    handle.seek(info.start)
    if handle.readinto(buffer) != info.nbytes:
        raise InputError(f"{info.file}: truncated at tensor {info.name}")
    dtype = _torch_dtype(info.dtype)
    if not buffer:
        return torch.empty(info.shape, dtype=dtype)
    return torch.frombuffer(buffer, dtype=dtype).reshape(info.shape)


def _torch_dtype(code: str) -> torch.dtype:
    import torch

    names = {**TORCH_NAMES, "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8"}
    names |= {"U8": "uint8", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
    return getattr(torch, names[code])


@dataclass(frozen=True)
class OutTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_BYTES[self.dtype]


def plan_shards(tensors: Iterable[OutTensor], shard_size: int) -> list[list[OutTensor]]:
    """Split tensors, in order, into shards of at most ``shard_size`` bytes (a tensor
    larger than that gets a shard of its own), like transformers' save_pretrained."""
    shards: list[list[OutTensor]] = [[]]
    size = 0
    for tensor in tensors:
        if shards[-1] and size + tensor.nbytes > shard_size:
            shards.append([])
            size = 0
        shards[-1].append(tensor)
        size += tensor.nbytes
    return shards if shards[0] else []


def shard_names(count: int) -> list[str]:
    if count == 1:
        return [SINGLE_NAME]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def _header_bytes(shard: list[OutTensor]) -> bytes:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for tensor in shard:
        header[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as safetensors writes it
    return struct.pack("<Q", len(raw)) + raw


class ShardWriter:
    """Writes planned shards tensor by tensor; ``write`` must follow the plan's order.

    Use it as a context manager. Each shard goes to a temporary file that is renamed
    when its last tensor is in, and the index is written last, so a crash never leaves a
    shard or an index that looks complete. Nothing is buffered beyond the tensor being
    written.
    """

    def __init__(self, folder: Path, shards: list[list[OutTensor]]) -> None:
        self.folder = folder
        self.shards = shards
        self.names = shard_names(len(shards))
        self._queue: Iterator[tuple[int, OutTensor]] = (
            (number, tensor) for number, shard in enumerate(shards) for tensor in shard
        )
        self._shard = contextlib.ExitStack()
        self._number = -1
        self._handle: BinaryIO | None = None
        self.bytes_written = 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._finish()
        else:
            self._shard.__exit__(exc_type, exc, tb)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        import torch

        number, planned = next(self._queue)
        if planned.name != name or tuple(tensor.shape) != planned.shape:
            raise AssertionError(f"shard plan expected {planned.name}, got {name}")
        if number != self._number:
            self._shard.close()
            self._number = number
            self._handle = self._shard.enter_context(
                atomic_open(self.folder / self.names[number], "wb")
            )
            self._handle.write(_header_bytes(self.shards[number]))
        assert self._handle is not None
        self._handle.write(memoryview(tensor.contiguous().reshape(-1).view(torch.uint8).numpy()))
        self.bytes_written += planned.nbytes

    def _finish(self) -> None:
        """Close the last shard and write the index (transformers' layout)."""
        self._shard.close()
        if next(self._queue, None) is not None:
            raise AssertionError("shard plan not complete")
        weight_map = {
            tensor.name: self.names[number]
            for number, shard in enumerate(self.shards)
            for tensor in shard
        }
        total = sum(tensor.nbytes for shard in self.shards for tensor in shard)
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        with atomic_open(self.folder / INDEX_NAME, "w", encoding="utf-8") as handle:
            json.dump(index, handle, indent=2)
            handle.write("\n")
