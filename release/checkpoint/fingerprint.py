"""A base model's fingerprint: which weights an adapter is merged onto, cheaply.

Two bases with the same architecture have the same tensor names and shapes, so those
alone cannot tell a base from its instruct twin or from a later revision. Hashing every
byte would (and costs a full read of many GB). The fingerprint hashes the names, dtypes
and shapes of every tensor plus a fixed sample of each tensor's bytes: a few short
windows at fixed relative positions. Any retraining, re-quantization or swap of
checkpoints changes essentially every tensor, so a sample per tensor catches it, while
the cost stays a few small reads per tensor.

It depends on the tensors only, not on how they are sharded, so re-saving a base with
another shard size keeps its fingerprint.

``read_sha256`` keys one safetensors file by the same reads (its header and each tensor's
windows): all that intake reads of a base's weights, so the adapter stage's key costs a
few small reads, not a hash of every byte (the merge, which reads them all, is keyed by
their content).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from pathlib import Path

from release.checkpoint.safetensors import TensorInfo, list_tensors, read_bytes

FINGERPRINT_VERSION = "base-fingerprint/1"
_WINDOW = 64
_POSITIONS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _windows(info: TensorInfo) -> list[tuple[int, int]]:
    """Byte ranges sampled from a tensor: windows at fixed relative positions."""
    if info.nbytes <= _WINDOW * len(_POSITIONS):
        return [(0, info.nbytes)]
    last = info.nbytes - _WINDOW
    return [(int(last * position), _WINDOW) for position in _POSITIONS]


def base_fingerprint(tensors: Mapping[str, TensorInfo]) -> str:
    """sha256 (hex) over every tensor's name, dtype, shape and sampled bytes."""
    digest = hashlib.sha256(FINGERPRINT_VERSION.encode())
    handles = {}
    try:
        for name in sorted(tensors):
            info = tensors[name]
            digest.update(f"\n{name}|{info.dtype}|{list(info.shape)}|".encode())
            if info.file not in handles:
                handles[info.file] = open(info.file, "rb")  # noqa: SIM115 (closed below)
            for offset, size in _windows(info):
                digest.update(read_bytes(handles[info.file], info, offset, size))
    finally:
        for handle in handles.values():
            handle.close()
    return digest.hexdigest()


def read_sha256(path: Path) -> str:
    """sha256 (hex) over what intake reads of one safetensors file: its header's bytes
    and every tensor's fingerprint windows (raises ``InputError`` for a file that is not
    safetensors)."""
    tensors = list_tensors(path)
    digest = hashlib.sha256(f"{FINGERPRINT_VERSION}/file".encode())
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        digest.update(handle.read(length))
        for info in tensors:
            for offset, size in _windows(info):
                digest.update(read_bytes(handle, info, offset, size))
    return digest.hexdigest()
