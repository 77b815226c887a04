"""The merged model folder, read the way a streaming exporter needs it.

``list_tensors`` reads only the safetensors headers (names, dtypes, shapes, offsets), so
the whole GGUF layout can be planned before any weight is loaded; ``iter_loaded`` then
reads one tensor at a time as float32, the precision llama.cpp's converter quantizes
from (so our bytes can match its), and ``iter_rows`` a large matrix a block of rows at a
time. Both go through ``release.checkpoint.safetensors``,
the one reader of checkpoints: plain reads, no memory map, no torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np

from release.checkpoint.safetensors import (
    FLOAT_DTYPES,
    TensorInfo,
    list_checkpoint,
    read_array,
    read_rows,
    to_float32,
)


def list_tensors(model_dir: Path) -> list[TensorInfo]:
    """Every tensor of the checkpoint, in file order, from the headers alone."""
    tensors = list(list_checkpoint(model_dir).values())
    for tensor in tensors:
        if tensor.dtype not in FLOAT_DTYPES - {"F64"}:
            raise ValueError(f"{tensor.file}: {tensor.name} is {tensor.dtype}, not a float type")
    return tensors


def iter_loaded(tensors: list[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
    """Each tensor with its values as float32, each weight file opened once."""
    with ExitStack() as stack:
        handles: dict[Path, IO[bytes]] = {}
        for tensor in tensors:
            if tensor.file not in handles:
                handles[tensor.file] = stack.enter_context(open(tensor.file, "rb"))
            yield tensor, to_float32(read_array(handles[tensor.file], tensor), tensor.dtype)


def iter_rows(tensor: TensorInfo, rows: int, step: int) -> Iterator[np.ndarray]:
    """The first ``rows`` rows of a matrix as float32, ``step`` rows at a time."""
    with open(tensor.file, "rb") as handle:
        for start in range(0, rows, step):
            block = read_rows(handle, tensor, start, min(start + step, rows))
            yield to_float32(block, tensor.dtype)
