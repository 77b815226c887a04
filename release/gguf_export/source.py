"""The merged model folder, read the way a streaming exporter needs it.

``list_tensors`` reads only the safetensors headers (names, dtypes, shapes, offsets), so
the whole GGUF layout can be planned before any weight is loaded; ``TensorLoader`` then
reads one tensor's bytes at a time with plain file reads. No memory map: pages of a
mapped checkpoint stay in the process's resident set once touched, so a mapped export
ends up holding the whole checkpoint; a read keeps only the tensor at hand. No torch
either (its import alone is ~200 MB); the format is a JSON header and raw
little-endian arrays.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}


@dataclass(frozen=True)
class SourceTensor:
    name: str
    shape: tuple[int, ...]
    file: Path
    dtype: str
    """safetensors dtype name: F32, F16 or BF16."""
    start: int
    """Absolute offset of the tensor's bytes in ``file``."""
    nbytes: int


def read_config(model_dir: Path) -> dict[str, Any]:
    """config.json, with a multimodal wrapper's ``text_config`` lifted to the top."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if isinstance(config.get("text_config"), dict):
        config = {**config, **config["text_config"]}
    return config


def weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / INDEX_NAME
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [model_dir / name for name in sorted(set(weight_map.values()))]
    single = model_dir / SINGLE_NAME
    if single.is_file():
        return [single]
    raise FileNotFoundError(f"{model_dir}: no {SINGLE_NAME} or {INDEX_NAME}")


def list_tensors(model_dir: Path) -> list[SourceTensor]:
    """Every tensor of the checkpoint, in file order, from the headers alone."""
    found = []
    for path in weight_files(model_dir):
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        header.pop("__metadata__", None)
        for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"]):
            if entry["dtype"] not in _DTYPES:
                raise ValueError(f"{path}: {name} is {entry['dtype']}, not a float type")
            begin, end = entry["data_offsets"]
            shape = tuple(entry["shape"])
            found.append(
                SourceTensor(name, shape, path, entry["dtype"], 8 + size + begin, end - begin)
            )
    return found


class TensorLoader:
    """Opens each weight file once; ``load`` returns one tensor as float32, the
    precision llama.cpp's converter quantizes from (so our bytes can match its)."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._handles: dict[Path, IO[bytes]] = {}

    def __enter__(self) -> TensorLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def load(self, tensor: SourceTensor) -> np.ndarray:
        handle = self._handles.get(tensor.file)
        if handle is None:
            handle = self._stack.enter_context(open(tensor.file, "rb"))  # noqa: SIM115
            self._handles[tensor.file] = handle
        handle.seek(tensor.start)
        raw = bytearray(tensor.nbytes)
        if handle.readinto(raw) != tensor.nbytes:
            raise ValueError(f"{tensor.file}: {tensor.name} is cut short")
        data = np.frombuffer(raw, dtype=_DTYPES[tensor.dtype])
        if tensor.dtype == "BF16":  # bf16 is the high half of a float32
            wide = data.astype(np.uint32)
            del data, raw
            wide <<= 16
            return wide.view(np.float32).reshape(tensor.shape)
        return data.astype(np.float32).reshape(tensor.shape)


def iter_loaded(tensors: list[SourceTensor]) -> Iterator[tuple[SourceTensor, np.ndarray]]:
    with TensorLoader() as loader:
        for tensor in tensors:
            yield tensor, loader.load(tensor)
