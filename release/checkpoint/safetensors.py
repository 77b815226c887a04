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
import hashlib
import itertools
import json
import math
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from release.core.errors import InputError
from release.core.files import atomic_open

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
    if not isinstance(header, dict):
        raise InputError(f"{path}: not a safetensors file (header is not a JSON object)")
    tensors = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = _checked_entry(path, name, entry)
        tensors.append(
            TensorInfo(
                name, path, entry["dtype"], tuple(entry["shape"]), data_start + begin, end - begin
            )
        )
    tensors.sort(key=lambda info: (info.start, info.nbytes))
    for before, after in itertools.pairwise(tensors):
        if after.start < before.start + before.nbytes:
            raise InputError(
                f"{path}: damaged safetensors header: tensors {before.name!r} and "
                f"{after.name!r} share bytes (overlapping data_offsets)",
                hint="save or download the file again",
            )
    needed = max((info.start + info.nbytes for info in tensors), default=data_start)
    size = path.stat().st_size
    if size < needed:
        raise InputError(
            f"{path}: truncated ({size} bytes; its header needs {needed})",
            hint="copy or download the file again",
        )
    return tensors


def _checked_entry(path: Path, name: str, entry: Any) -> tuple[int, int]:
    """A header entry's data offsets, once its dtype, shape and offsets agree; a
    damaged or hostile header is an ``InputError`` naming the tensor."""

    def bad(problem: str) -> InputError:
        return InputError(
            f"{path}: damaged safetensors header: tensor {name!r}: {problem}",
            hint="save or download the file again",
        )

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(entry, dict):
        raise bad("not a JSON object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str):
        raise bad(f"dtype {dtype!r} is not a name")
    if not isinstance(shape, list) or not all(count(n) for n in shape):
        raise bad(f"shape {shape!r} is not a list of sizes (whole numbers, 0 or more)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(count, offsets))):
        raise bad(f"data_offsets {offsets!r} is not [begin, end]")
    begin, end = offsets
    if end < begin or (
        dtype in DTYPE_BYTES and end - begin != math.prod(shape) * DTYPE_BYTES[dtype]
    ):
        raise bad(f"data_offsets {offsets!r} do not hold a {dtype} tensor of shape {shape}")
    return begin, end


def checkpoint_files(folder: Path) -> list[Path]:
    """The safetensors files of a model folder, in name order: its index's, else every
    *.safetensors (shard names sort as the shards are numbered)."""
    index = folder / INDEX_NAME
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        files = [folder / name for name in sorted(set(weight_map.values()))]
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


_NUMPY = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",  # numpy has no bfloat16: kept as raw bits, see to_float32
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
    "F8_E4M3": "u1",
    "F8_E5M2": "u1",
}
_COPY_CHUNK = 16 * 2**20


def read_array(handle: BinaryIO, info: TensorInfo) -> np.ndarray:
    """One tensor as a numpy array, read with a single ``readinto`` of its byte range."""
    array = np.empty(info.shape, dtype=_NUMPY[info.dtype])
    handle.seek(info.start)
    if handle.readinto(memoryview(array.reshape(-1)).cast("B")) != info.nbytes:
        raise InputError(f"{info.file}: truncated at tensor {info.name}")
    return array


def read_rows(handle: BinaryIO, info: TensorInfo, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a tensor (its first axis; a 0-d tensor is one row) as a
    2-d array, read with a single ``readinto``."""
    rows = info.shape[0] if info.shape else 1
    width = info.numel // rows if rows else 0
    array = np.empty((stop - start, width), dtype=_NUMPY[info.dtype])
    handle.seek(info.start + start * width * DTYPE_BYTES[info.dtype])
    if handle.readinto(memoryview(array.reshape(-1)).cast("B")) != array.nbytes:
        raise InputError(f"{info.file}: truncated at tensor {info.name}")
    return array


def to_float32(array: np.ndarray, code: str) -> np.ndarray:
    """A float tensor's values as a new float32 array (bf16 bits become the high half)."""
    if code != "BF16":
        return array.astype(np.float32)
    wide = array.astype(np.uint32)
    wide <<= 16
    return wide.view(np.float32)


def from_float32(array: np.ndarray, code: str) -> np.ndarray:
    """float32 values cast to ``code`` (a new contiguous array), rounding to nearest even
    as torch does.

    For bf16 this rounds ``array`` in place (callers pass a scratch array)."""
    if code != "BF16":
        return array.astype(_NUMPY[code])
    nan = np.isnan(array)
    bits = np.ascontiguousarray(array).view(np.uint32)
    odd = bits >> 16
    odd &= 1
    bits += odd
    bits += np.uint32(0x7FFF)
    bits >>= 16
    high = bits.astype(np.uint16)
    if nan.any():
        high[nan] = np.uint16(0x7FC0)
    return high


def copy_bytes(source: BinaryIO, info: TensorInfo, target: BinaryIO | _Hashed) -> None:
    """Copy a tensor's bytes unchanged, in chunks, without holding the tensor."""
    source.seek(info.start)
    left = info.nbytes
    while left:
        chunk = source.read(min(left, _COPY_CHUNK))
        if not chunk:
            raise InputError(f"{info.file}: truncated at tensor {info.name}")
        target.write(chunk)
        left -= len(chunk)


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


def header_bytes(shard: list[OutTensor]) -> bytes:
    """A shard's safetensors header (its length first), its data 8-byte aligned."""
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


class _Hashed:
    """A file written and hashed by a thread of its own, so its sha256 needs no second
    read, and the caller reads and computes the next part while this one is hashed and
    written (hashlib and file writes release the GIL). At most ``_AHEAD`` parts wait;
    a part must not be changed once handed over."""

    _AHEAD = 2

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="shard-writer")
        self._pending: deque[Future] = deque()

    def write(self, data: bytes | memoryview) -> None:
        while len(self._pending) >= self._AHEAD:
            self._pending.popleft().result()  # a failed write raises here
        self._pending.append(self._thread.submit(self._write, data))

    def _write(self, data: bytes | memoryview) -> None:
        self.digest.update(data)
        self.handle.write(data)

    def drain(self) -> None:
        """Wait until every part is written; raise the first write's error."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._thread.shutdown(cancel_futures=True)


class ShardWriter:
    """Writes planned shards tensor by tensor; ``write`` must follow the plan's order.

    Use it as a context manager. Each shard goes to a temporary file that is renamed
    when its last tensor is in, and the index is written last, so a crash never leaves a
    shard or an index that looks complete. Nothing is buffered beyond the part of a
    tensor being written. Each shard is hashed while it is written (``sha256``).
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
        self._handle: _Hashed | None = None
        self.bytes_written = 0
        self.sha256: dict[str, str] = {}
        """Shard file name -> sha256 of its bytes, for each shard finished."""

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._finish()
            return
        with contextlib.suppress(Exception):  # the error being raised is the one to see
            if self._handle is not None:
                self._handle.drain()
        self._shard.__exit__(exc_type, exc, tb)

    def write(self, name: str, array: np.ndarray) -> None:
        """Write the next planned tensor from an array of its output dtype."""
        self.write_parts(name, tuple(array.shape), [array])

    def write_parts(self, name: str, shape: tuple[int, ...], parts: Iterable[np.ndarray]) -> None:
        """Write the next planned tensor from consecutive parts of its output bytes
        (blocks of rows), so that no more than a part is held."""
        handle, planned = self._next(name, shape)
        written = 0
        for part in parts:
            data = memoryview(np.ascontiguousarray(part).reshape(-1)).cast("B")
            handle.write(data)
            written += data.nbytes
        if written != planned.nbytes:
            raise AssertionError(f"{name}: wrote {written} bytes, planned {planned.nbytes}")

    def copy(self, name: str, source: BinaryIO, info: TensorInfo) -> None:
        """Write the next planned tensor as ``info``'s bytes, unchanged."""
        copy_bytes(source, info, self._next(name, info.shape)[0])

    def _next(self, name: str, shape: tuple[int, ...]) -> tuple[_Hashed, OutTensor]:
        number, planned = next(self._queue)
        if planned.name != name or shape != planned.shape:
            raise AssertionError(f"shard plan expected {planned.name}, got {name}")
        if number != self._number:
            self._close_shard()
            self._number = number
            opened = atomic_open(self.folder / self.names[number], "wb")
            self._handle = _Hashed(self._shard.enter_context(opened))
            self._handle.write(header_bytes(self.shards[number]))
        assert self._handle is not None
        self.bytes_written += planned.nbytes
        return self._handle, planned

    def _close_shard(self) -> None:
        if self._handle is not None:
            try:
                self._handle.drain()
            except BaseException as exc:
                self._shard.__exit__(type(exc), exc, exc.__traceback__)  # no renamed shard
                raise
            self.sha256[self.names[self._number]] = self._handle.digest.hexdigest()
            self._handle = None
        self._shard.close()

    def _finish(self) -> None:
        """Close the last shard and write the index (transformers' layout)."""
        self._close_shard()
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


def parameter_counts(model_dir: Path) -> tuple[int, int]:
    """A model folder's parameter count and its largest tensor's element count."""
    sizes = [info.numel for info in list_checkpoint(model_dir).values()]
    return sum(sizes), max(sizes, default=0)


def checkpoint_dtype(model_dir: Path) -> str:
    """The floating dtype holding most of a checkpoint's parameters, as torch names it."""
    counts: dict[str, int] = {}
    for info in list_checkpoint(model_dir).values():
        if info.dtype in ("BF16", "F16", "F32"):
            name = TORCH_NAMES[info.dtype]
            counts[name] = counts.get(name, 0) + info.numel
    return max(counts, key=counts.__getitem__) if counts else "float32"
