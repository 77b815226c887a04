"""A bitsandbytes 4-bit checkpoint (a QLoRA base, a ``-bnb-4bit`` repo) as plain float
weights, without bitsandbytes.

transformers saves each quantized linear weight as packed 4-bit codes (uint8, two per
byte, the high nibble first) with its quant state beside it:

- ``….weight.absmax``: one float32 scale per block of ``blocksize`` values; with double
  quantization, uint8 codes of an 8-bit blockwise quantization of those scales, read as
  ``nested_quant_map[code] * nested_absmax[block] + nested_offset``;
- ``….weight.quant_map``: the 16 levels of the 4-bit type (NF4 or FP4);
- ``….weight.quant_state.bitsandbytes__<type>``: JSON (quant_type, blocksize, dtype,
  shape, and the nested blocksize and offset).

A value is ``quant_map[code] * absmax[block]`` in float32, cast to the state's dtype:
what bitsandbytes' own ``dequantize_4bit`` computes (tests/bnb_samples/ holds weights it
quantized and dequantized). The result is the base the 4-bit model computes with, not
the full-precision base it was quantized from: the 4-bit rounding stays in the weights.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from release.checkpoint.safetensors import (
    CODES,
    INDEX_NAME,
    OutTensor,
    ShardWriter,
    TensorInfo,
    from_float32,
    list_checkpoint,
    plan_shards,
    read_array,
)
from release.core.errors import InputError
from release.preflight import Needs

STATE_MARKER = ".quant_state.bitsandbytes__"
"""The suffix of a 4-bit weight's quant state (``….weight.quant_state.bitsandbytes__nf4``)."""
_STATE_PARTS = ("absmax", "quant_map", "nested_absmax", "nested_quant_map")
FOUR_BIT_TYPES = ("nf4", "fp4")
SHARD_SIZE = 2 * 10**9
_HEADER_PER_TENSOR = 160
"""Bytes of a safetensors header entry, generously (as ``release.merge.needs`` counts)."""


@dataclass(frozen=True)
class Packed4bit:
    """One packed weight and the tensors of its quant state."""

    weight: TensorInfo
    state: dict[str, Any]
    parts: dict[str, TensorInfo]
    """``absmax``, ``quant_map`` and, with double quantization, the ``nested_*`` ones."""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.state["shape"])

    @property
    def dtype(self) -> str:
        """The safetensors code of the dtype the weight was quantized from (BF16…)."""
        return CODES[self.state.get("dtype", "float32")]


@dataclass(frozen=True)
class Dequantized:
    """Progress: ``done`` of the checkpoint's ``total`` tensors written, after ``name``."""

    done: int
    total: int
    name: str


def _read(info: TensorInfo) -> np.ndarray:
    with open(info.file, "rb") as handle:
        return read_array(handle, info)


def packed_4bit(base: dict[str, TensorInfo]) -> dict[str, Packed4bit]:
    """The checkpoint's 4-bit weights by name, with their quant state read."""
    found = {}
    for name, info in base.items():
        if STATE_MARKER not in name:
            continue
        weight = name.split(STATE_MARKER)[0]
        if weight not in base:
            raise InputError(f"{info.file}: {name} has no weight {weight}")
        try:
            state = json.loads(_read(info).tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise InputError(
                f"{info.file}: {name} is not bitsandbytes' quant state ({exc})"
            ) from None
        if state.get("quant_type") not in FOUR_BIT_TYPES or "shape" not in state:
            raise InputError(f"{info.file}: {name}: not a 4-bit nf4/fp4 quant state")
        parts = {
            part: base[f"{weight}.{part}"] for part in _STATE_PARTS if f"{weight}.{part}" in base
        }
        if {"absmax", "quant_map"} - set(parts):
            raise InputError(f"{info.file}: {weight} lacks its absmax or quant_map tensor")
        found[weight] = Packed4bit(base[weight], state, parts)
    return found


def state_tensors(packed: dict[str, Packed4bit]) -> set[str]:
    """The names of the quant-state tensors: none of them is a weight of the model."""
    names = set()
    for weight, item in packed.items():
        names |= {f"{weight}.{part}" for part in item.parts}
        names.add(f"{weight}{STATE_MARKER}{item.state['quant_type']}")
    return names


def _scales(item: Packed4bit) -> np.ndarray:
    """The per-block scales, float32 (double quantization undone)."""
    absmax = _read(item.parts["absmax"])
    if "nested_absmax" not in item.parts:
        return absmax.astype(np.float32)
    table = _read(item.parts["nested_quant_map"]).astype(np.float32)
    nested = _read(item.parts["nested_absmax"]).astype(np.float32)
    block = int(item.state.get("nested_blocksize", 256))
    scales = table[absmax.astype(np.int64)] * np.repeat(nested, block)[: absmax.size]
    return scales + np.float32(item.state.get("nested_offset", 0.0))


def dequantize(item: Packed4bit) -> np.ndarray:
    """One weight as float32 values of its shape, as bitsandbytes' dequantize_4bit."""
    codes = _read(item.weight).reshape(-1)
    numel = int(np.prod(item.shape))
    index = np.empty(codes.size * 2, dtype=np.uint8)
    index[0::2] = codes >> 4
    index[1::2] = codes & 0xF
    values = _read(item.parts["quant_map"]).astype(np.float32)[index[:numel]]
    block = int(item.state["blocksize"])
    scales = _scales(item)
    if scales.size * block < numel:
        raise InputError(f"{item.weight.file}: {item.weight.name}: too few absmax for its shape")
    values *= np.repeat(scales, block)[:numel]
    return values.reshape(item.shape)


def _without_quantization(config: dict[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in config.items() if k != "quantization_config"}
    if isinstance(config.get("text_config"), dict):
        config["text_config"] = _without_quantization(config["text_config"])
    return config


def _plan(base: dict[str, TensorInfo], packed: dict[str, Packed4bit]) -> list[OutTensor]:
    """Every tensor of the dequantized checkpoint: the 4-bit ones at their own dtype and
    shape, the quant states left out, the rest as they are."""
    dropped = state_tensors(packed)
    return [
        OutTensor(name, packed[name].dtype, packed[name].shape)
        if name in packed
        else OutTensor(name, info.dtype, info.shape)
        for name, info in base.items()
        if name not in dropped
    ]


def _side_files(base_dir: Path) -> list[Path]:
    """What is copied beside the weights: every file but the safetensors and their index."""
    return [
        path
        for path in sorted(base_dir.iterdir())
        if path.is_file() and path.suffix != ".safetensors" and path.name != INDEX_NAME
    ]


def dequantize_needs(base_dir: Path) -> Needs:
    """What the dequantized copy writes (the weights at full size, the side files) and its
    peak: the largest 4-bit weight's float32 values, codes and scales."""
    base = list_checkpoint(base_dir)
    packed = packed_4bit(base)
    plan = _plan(base, packed)
    shards = plan_shards(plan, SHARD_SIZE)
    headers = sum(8 + _HEADER_PER_TENSOR * len(shard) for shard in shards)
    largest = max((4 * int(np.prod(item.shape)) for item in packed.values()), default=0)
    return Needs(
        what="the dequantized base",
        output_bytes=sum(t.nbytes for t in plan)
        + headers
        + 64 * len(plan)  # the index's weight map (ShardWriter always writes one)
        + sum(path.stat().st_size for path in _side_files(base_dir)),
        memory_bytes=3 * largest,
        hint="or set base.repo_id / base.path to the unquantized base, which needs no copy",
    )


def dequantize_checkpoint(
    base_dir: Path, out_dir: Path, shard_size: int = SHARD_SIZE
) -> Generator[Dequantized, None, int]:
    """Write ``base_dir`` into ``out_dir`` with its 4-bit weights dequantized, its quant
    states dropped and config.json without its quantization_config; every other file is
    copied. Returns how many weights were dequantized."""
    base = list_checkpoint(base_dir)
    packed = packed_4bit(base)
    plan = _plan(base, packed)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ShardWriter(out_dir, plan_shards(plan, shard_size)) as writer:
        for done, out in enumerate(plan, start=1):
            if out.name in packed:
                writer.write(out.name, from_float32(dequantize(packed[out.name]), out.dtype))
            else:
                with open(base[out.name].file, "rb") as handle:
                    writer.copy(out.name, handle, base[out.name])
            yield Dequantized(done, len(plan), out.name)
    for source in _side_files(base_dir):
        if source.name != "config.json":
            shutil.copyfile(source, out_dir / source.name)
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    text = json.dumps(_without_quantization(config), indent=2) + "\n"
    (out_dir / "config.json").write_text(text, encoding="utf-8")
    return len(packed)
