"""A base tensor merged with its LoRA and cast, a block of rows at a time.

On a whole tensor each step (widen bf16 to float32, add the delta, round back) walks
every element through main memory with a temporary the size of the tensor, so numpy
waits on memory, not on arithmetic. A block of rows whose float32 working copy fits in
the CPU's cache goes through all the steps while it is there: on the bench's bf16
Llama this made the merge's arithmetic several times faster. Every element is computed
as the whole-tensor formula computes it, so the bytes are the same.

The rows are read from the checkpoint in chunks (``READ_BYTES``) and each chunk's
output is handed to the writer as soon as it is done: what the merge holds is a chunk,
whatever the tensor's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from release.checkpoint.safetensors import (
    DTYPE_BYTES,
    TensorInfo,
    from_float32,
    read_rows,
    to_float32,
)
from release.merge.lora import LoraFactors

BLOCK_BYTES = 64 * 2**10
"""float32 bytes of one block of rows: a few such temporaries stay in a core's cache."""
READ_BYTES = 8 * 2**20
"""Input bytes read (and output bytes written) at a time."""


def merged_rows(
    handle: BinaryIO, info: TensorInfo, out_dtype: str, factors: LoraFactors | None
) -> Iterator[np.ndarray]:
    """The tensor ``info`` plus the delta of ``factors`` (none: a plain cast) in
    ``out_dtype``, as consecutive chunks of rows of the output."""
    rows = info.shape[0] if info.shape else 1
    width = info.numel // rows if rows else 0
    chunk = max(1, READ_BYTES // max(1, width * DTYPE_BYTES[info.dtype]))
    block = max(1, BLOCK_BYTES // max(1, width * 4))
    for start in range(0, rows, chunk):
        raw = read_rows(handle, info, start, min(rows, start + chunk))
        out: np.ndarray | None = None
        for first in range(0, raw.shape[0], block):
            weight = to_float32(raw[first : first + block], info.dtype)
            if factors is not None:
                at = start + first
                weight += factors.delta_rows(at, at + weight.shape[0])
            part = from_float32(weight, out_dtype)
            if out is None:
                out = np.empty(raw.shape, dtype=part.dtype)
            out[first : first + block] = part
        if out is not None:
            yield out
