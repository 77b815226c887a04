"""Merge a LoRA adapter into its base one tensor at a time.

The base's shards are walked in byte order. A tensor the adapter does not touch and
the output dtype keeps is copied as bytes; one it edits with a plain LoRA, or one that
is only cast, is merged in float32 a block of rows at a time (``release.merge.blocks``)
and written as each chunk is done; a replacement (modules_to_save) or a DoRA edit is
merged whole (``release.merge.lora.merge_weight``), and so is one onto a residual PiSSA
or OLoRA moves the base to (``release.merge.initialization``); a copy grown by added
tokens is written at its own size, and a head untied from the embedding is written
after the base's tensors (``release.merge.vocabulary``). Every output tensor's dtype and
shape are known from the headers before any byte is read, so the shards are planned up
front and written in order by ``ShardWriter``, which hashes each shard as it writes it
on a thread of its own (the runner records those hashes instead of reading the files
again). Peak memory is a few read chunks, or one whole-merged tensor's float32 copies.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Callable, Generator
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import psutil

from release.checkpoint.safetensors import (
    FLOAT_DTYPES,
    TORCH_NAMES,
    OutTensor,
    ShardWriter,
    TensorInfo,
    from_float32,
    list_checkpoint,
    list_tensors,
    plan_shards,
    read_array,
    to_float32,
)
from release.core.errors import InputError
from release.core.waiting import ticking
from release.merge import initialization, lora
from release.merge.blocks import merged_rows
from release.merge.writer import (
    MergeResult,
    Step,
    by_rows,
    copy_side_files,
    moves_base,
    output_dtype,
    write_config,
)


def merge_streaming(
    base_dir: Path,
    adapter_dir: Path,
    targets: dict[str, str],
    out_dir: Path,
    *,
    dtype: str = "auto",
    shard_size: int = 2 * 10**9,
) -> Generator[Step, None, MergeResult]:
    """Write the merged model folder into ``out_dir``; yields a Step per tensor."""
    _, settings = lora.read_adapter_config(adapter_dir)
    adapter_file = adapter_dir / lora.WEIGHTS_NAME
    adapter = {info.name: info for info in list_tensors(adapter_file)}
    edits = {  # a head kept tied to the embedding has no target: nothing of its own to write
        targets[parameter]: edit
        for parameter, edit in lora.group_edits(list(adapter), adapter_file).items()
        if parameter in targets
    }
    base = list_checkpoint(base_dir)
    plan = [
        OutTensor(name, output_dtype(info, dtype), _out_shape(info, edits.get(name), adapter))
        for name, info in base.items()
    ]
    # a tensor the base lacks: the head an adapter untied from the embedding it was tied to
    most = Counter(out.dtype for out in plan if out.dtype in FLOAT_DTYPES).most_common(1)[0][0]
    added = [name for name in edits if name not in base]
    plan += [OutTensor(n, most, adapter[edits[n].replacement or ""].shape) for n in added]
    shards = plan_shards(plan, shard_size)
    total = sum(info.nbytes for info in base.values())
    process = psutil.Process()
    peak = process.memory_info().rss
    done = 0
    with (
        contextlib.ExitStack() as files,
        open(adapter_file, "rb") as adapter_handle,
        ShardWriter(out_dir, shards) as writer,
    ):
        handles = {}

        def read_adapter(key: str) -> np.ndarray:
            info = adapter[key]
            return to_float32(read_array(adapter_handle, info), info.dtype)

        for out in plan:
            if out.name in added:
                edit = edits[out.name]
                writer.write(
                    out.name, from_float32(read_adapter(edit.replacement or ""), out.dtype)
                )
                continue
            info = base[out.name]
            if info.file not in handles:
                handles[info.file] = files.enter_context(open(info.file, "rb"))
            handle, edit = handles[info.file], edits.get(out.name)
            write = partial(
                _write_tensor, writer, out, info, handle, edit, read_adapter, settings, adapter_dir
            )
            if moves_base(edit, settings):
                # torch's SVD or QR: on this thread, as PEFT's ran (torch on a thread of
                # its own splits the work in other ways: results some ulp apart)
                write()
            else:  # the same step again every few seconds: Gemma-4-E4B's 5.6 GB
                again = Step(out.name, done, total)  # per-layer table is one tensor (14 s)
                yield from ticking(write, lambda _, again=again: again)
            peak = max(peak, process.memory_info().rss)
            done += info.nbytes
            yield Step(out.name, done, total)
    written = {out.dtype for out in plan if out.dtype in FLOAT_DTYPES}
    written_dtype = TORCH_NAMES[written.pop()] if len(written) == 1 else "mixed"
    grown = {out.shape[0] for out in plan if out.name in base and out.shape != base[out.name].shape}
    write_config(base_dir, out_dir, written_dtype, max(grown, default=None), untied=bool(added))
    tokenizer_from = copy_side_files(base_dir, adapter_dir, out_dir)
    return MergeResult(
        parameters=sum(math.prod(out.shape) for out in plan),
        dtype=written_dtype,
        bytes_written=writer.bytes_written,
        shards=len(shards),
        tensors=len(plan),
        tensors_merged=len(edits),
        peak_rss=peak,
        tokenizer_from=tokenizer_from,
        sha256=writer.sha256,
    )


def _write_tensor(
    writer: ShardWriter,
    out: OutTensor,
    info: TensorInfo,
    handle: BinaryIO,
    edit: lora.ModuleEdit | None,
    read_adapter: Callable[[str], np.ndarray],
    settings: lora.LoraSettings,
    adapter_dir: Path,
) -> None:
    """One base tensor into the merged checkpoint: copied as bytes, merged by rows, or
    merged whole (``writer.by_rows``)."""
    if edit is None and out.dtype == info.dtype:
        writer.copy(out.name, handle, info)
    elif by_rows(edit, info, settings):
        factors = lora.lora_factors(edit, read_adapter, settings) if edit else None
        rows = merged_rows(handle, info, out.dtype, factors)
        writer.write_parts(out.name, info.shape, (_finite(p, out, adapter_dir) for p in rows))
    else:
        weight = to_float32(read_array(handle, info), info.dtype)
        if moves_base(edit, settings):  # the residual in the base's dtype, as PEFT's
            assert edit is not None
            weight = _residual(weight, edit, settings, info.dtype)
        if edit is not None:
            weight = lora.merge_weight(weight, edit, read_adapter, settings)
        writer.write(out.name, _finite(from_float32(weight, out.dtype), out, adapter_dir))


def _finite(part: np.ndarray, out: OutTensor, adapter_dir: Path) -> np.ndarray:
    """``part`` of the output tensor ``out``, refused when a value in it is inf or NaN: an
    update that overflows the output dtype (finite factors, e.g. B = 3e38) would otherwise
    ship a tensor of inf that every later check reads as a model."""
    if out.dtype == "BF16":  # bf16 as its bits: exponent all ones is inf or NaN
        bad = bool(np.any((part & np.uint16(0x7F80)) == np.uint16(0x7F80)))
    else:
        bad = part.dtype.kind == "f" and not bool(np.isfinite(part).all())
    if bad:
        raise InputError(
            f"{adapter_dir}: merged into the base, the adapter gives inf or NaN in "
            f"{out.name} ({TORCH_NAMES.get(out.dtype, out.dtype)})",
            hint="the adapter's weights overflow the model's dtype: check how it was trained",
        )
    return part


def _residual(
    weight: np.ndarray, edit: lora.ModuleEdit, settings: lora.LoraSettings, dtype: str
) -> np.ndarray:
    """The base weight less PiSSA's or OLoRA's initial ``s * (B0 @ A0)``, rounded to the
    base's ``dtype`` as PEFT's load leaves it, in float32."""
    assert settings.init_lora_weights
    rank = settings.rank(edit.module)
    moved = initialization.residual(
        weight,
        settings.init_lora_weights,
        rank,
        settings.scale(edit.module, rank),
        settings.fan_in_fan_out,
    )
    return to_float32(from_float32(moved, dtype), dtype)


def _out_shape(
    info: TensorInfo, edit: lora.ModuleEdit | None, adapter: dict[str, TensorInfo]
) -> tuple[int, ...]:
    """A tensor's merged shape: the base's, or a replacement's grown by added tokens."""
    if edit is not None and edit.replacement and edit.kind is None:
        return adapter[edit.replacement].shape
    return info.shape
