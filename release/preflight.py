"""Preflight: before a stage writes a byte, check that its outputs fit on the disk and its
peak fits in memory; refuse at once, with the numbers, when they do not.

A merge that dies of ENOSPC after twenty minutes, or is killed by the OOM killer halfway
through a GGUF export, costs the user the time and tells them less than a line that says
"needs 15.2 GB, 9.8 GB free on /data" would have before the start.

How much each stage needs, from headers alone (no tensor is loaded):

- merge: every output tensor at the merge dtype (the merge's own shard plan) plus the
  small files it copies; memory: the largest tensor's float32 working copies (read,
  merged, delta, cast: about three float32 copies) plus the two largest adapter tensors.
- gguf: each requested file, tensor by tensor at the type it will be stored in (the
  exporter's own plan; K-quants: the type llama.cpp's quantizer will choose, its mixes
  and fallbacks, ``release.gguf_export.kquant_types``; within 0.05% of the real files)
  plus the tokenizer metadata, plus the hidden f16 source the quantizer starts from when
  the release asks for K-quants but not for f16. A model llama.cpp's converter writes
  is planned from its checkpoint under llama.cpp's tensor names, its tokenizer file
  standing in for the metadata (generous);
  memory: the checks load the model in float32 twice over (transformers dequantizes the
  whole GGUF before building the model).
- evaluate: writes nothing; memory: the base and the merged model in float32.

Stages write into a staging folder beside their final one and rename it: a rename on
the same filesystem needs no extra space, so the staging copy costs nothing more. An
older output folder stays until the new one replaces it, and is already counted as used.

Free disk is measured on the filesystem holding the workspace (its nearest existing
folder); available memory is psutil's, or less where a cgroup limit leaves less (the
tightest level of the process's cgroup, v1 or v2). Disk gets a margin (filesystem
overhead, the manifest); memory does not, as the estimate is already a peak.

``MODEL_RELEASE_SKIP_PREFLIGHT=1`` turns a refusal into a warning, for filesystems whose
free space misleads (compression, quotas counted elsewhere), like rpm's --ignoresize.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release.errors import NotEnoughResources

if TYPE_CHECKING:
    from release.events import Event
    from release.stages.base import StageContext

SKIP_ENV = "MODEL_RELEASE_SKIP_PREFLIGHT"
DISK_MARGIN_FRACTION = 0.03
DISK_MARGIN_BYTES = 8 * 2**20
MERGE_FP32_COPIES = 3
"""The largest tensor's float32 copies at a merge's peak: weight, delta, the cast."""
GGUF_FP32_MODELS = 2
"""Float32 copies of the model at a GGUF check's peak: transformers' dequantized state
dict and the model built from it."""
_GGUF_TENSOR_ALIGNMENT = 32
_SAFETENSORS_HEADER_PER_TENSOR = 160
"""Bytes of a safetensors header entry (name, dtype, shape, offsets), generously."""


@dataclass(frozen=True)
class Needs:
    """What a stage will write and hold at its peak, estimated before it starts."""

    what: str
    """The outputs, as a message names them ("the merged model", "2 GGUF files")."""
    output_bytes: int
    memory_bytes: int
    hint: str
    """What to do when the disk is too small, beyond freeing space."""


@dataclass(frozen=True)
class Resources:
    """What the machine has, measured now."""

    disk_path: Path
    free_disk_bytes: int
    available_memory_bytes: int
    memory_source: str
    """Where the memory figure comes from: "RAM" or a cgroup's limit."""


def disk_margin(output_bytes: int) -> int:
    """Room kept free beyond the estimate (filesystem overhead, the manifest)."""
    if output_bytes == 0:
        return 0
    return DISK_MARGIN_BYTES + round(output_bytes * DISK_MARGIN_FRACTION)


_OVERRIDE = f" (if the estimate is wrong here, {SKIP_ENV}=1 goes on regardless)"


def refusal(stage: str, needs: Needs, have: Resources) -> NotEnoughResources | None:
    """The error a stage should stop with, or None when ``needs`` fits in ``have``."""
    wanted = needs.output_bytes + disk_margin(needs.output_bytes)
    if wanted > have.free_disk_bytes:
        return NotEnoughResources(
            stage,
            f"not enough disk space in {have.disk_path}: {needs.what} needs "
            f"{_decimal(needs.output_bytes)} (+ {_decimal(wanted - needs.output_bytes)} margin), "
            f"{_decimal(have.free_disk_bytes)} free",
            hint=f"free {_decimal(wanted - have.free_disk_bytes)} there or move the workspace "
            f"to a bigger disk; {needs.hint}{_OVERRIDE}",
            resource="disk",
            needed=wanted,
            available=have.free_disk_bytes,
            where=str(have.disk_path),
        )
    if needs.memory_bytes > have.available_memory_bytes:
        return NotEnoughResources(
            stage,
            f"not enough memory: {stage} needs about {_decimal(needs.memory_bytes)} at its "
            f"peak, {_decimal(have.available_memory_bytes)} available ({have.memory_source})",
            hint="close other programs or run on a machine with more memory"
            + (f"; {needs.hint}" if needs.hint else "")
            + _OVERRIDE,
            resource="memory",
            needed=needs.memory_bytes,
            available=have.available_memory_bytes,
            where=have.memory_source,
        )
    return None


def check(
    ctx: StageContext, needs: Needs
) -> Generator[Event, None, tuple[dict[str, Any], dict[str, Any]]]:
    """Refuse (``NotEnoughResources``) when ``needs`` does not fit. Returns the estimates
    (facts: they follow from the inputs) and the machine's numbers (measured)."""
    have = measure(ctx.workspace)
    problem = refusal(ctx.stage, needs, have)
    if problem is not None:
        if os.environ.get(SKIP_ENV) != "1":
            raise problem
        yield ctx.log(f"{problem.message} ({SKIP_ENV}=1: going on)", "warning")
    estimates = {
        "estimated_output_bytes": needs.output_bytes,
        "estimated_peak_memory_bytes": needs.memory_bytes,
    }
    measured = {
        "free_disk_bytes": have.free_disk_bytes,
        "available_memory_bytes": have.available_memory_bytes,
    }
    return estimates, measured


# --- what the machine has -----------------------------------------------------------


def measure(path: Path) -> Resources:
    folder = nearest_existing(path)
    memory, source = available_memory()
    return Resources(folder, shutil.disk_usage(folder).free, memory, source)


def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def available_memory() -> tuple[int, str]:
    """Bytes this process can still take, and where that figure comes from."""
    import psutil

    available = psutil.virtual_memory().available
    limited = cgroup_headroom()
    if limited is not None and limited[0] < available:
        return max(limited[0], 0), f"the memory limit of cgroup {limited[1]}"
    return available, "RAM"


def cgroup_headroom(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")
) -> tuple[int, str] | None:
    """The least room any memory limit on this process's cgroups leaves (limit minus
    usage, reclaimable page cache counted as free), and that cgroup; None without one."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    tightest: tuple[int, str] | None = None
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if controllers == "":  # cgroup v2
            mount = root if (root / "cgroup.controllers").exists() else root / "unified"
            files = ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            mount = root / "memory"
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        for folder in _levels(mount, group):
            room = _room(folder, *files)
            if room is not None and (tightest is None or room < tightest[0]):
                tightest = (room, str(folder))
    return tightest


def _levels(mount: Path, group: str) -> Iterable[Path]:
    """The cgroup's folder and its parents up to the mount (a limit on any applies). In a
    cgroup namespace the group's path may not exist under the mount: start at its top."""
    folder = mount / group.strip("/")
    if not folder.is_dir():
        folder = mount
    while True:
        yield folder
        if folder == mount or mount not in folder.parents:
            return
        folder = folder.parent


def _room(folder: Path, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    try:
        limit_text = (folder / limit_file).read_text().strip()
        usage = int((folder / usage_file).read_text())
        limit = None if limit_text == "max" else int(limit_text)
    except (OSError, ValueError):
        return None
    if limit is None or limit >= 2**62:  # v1 writes "no limit" as ~2**63
        return None
    inactive = 0
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == inactive_key:
                inactive = int(value)
    except (OSError, ValueError):
        pass
    return limit - usage + inactive


# --- what each stage needs ----------------------------------------------------------


def _fp32_bytes(shape: tuple[int, ...]) -> int:
    return math.prod(shape) * 4


def merge_needs(base_dir: Path, adapter_dir: Path, dtype: str, shard_size: int) -> Needs:
    """The merged folder's bytes (its shard plan, the copied files) and the merge's peak."""
    from release import lora
    from release.merge_stream import COPIED_FILES, output_dtype
    from release.safetensors_stream import (
        OutTensor,
        list_checkpoint,
        list_tensors,
        plan_shards,
    )

    base = list_checkpoint(base_dir)
    plan = [OutTensor(name, output_dtype(info, dtype), info.shape) for name, info in base.items()]
    shards = plan_shards(plan, shard_size)
    headers = sum(8 + _SAFETENSORS_HEADER_PER_TENSOR * len(shard) for shard in shards)
    index = 64 * len(plan) if len(shards) > 1 else 0
    copied = sum(
        max(
            (folder / name).stat().st_size if (folder / name).is_file() else 0
            for folder in (base_dir, adapter_dir)
        )
        for name in COPIED_FILES
    )
    side = sum(p.stat().st_size for p in [base_dir / "config.json", *base_dir.glob("*.py")])
    adapter = sorted(
        (_fp32_bytes(info.shape) for info in list_tensors(adapter_dir / lora.WEIGHTS_NAME)),
        reverse=True,
    )
    largest = max((_fp32_bytes(info.shape) for info in base.values()), default=0)
    return Needs(
        what="the merged model",
        output_bytes=sum(t.nbytes for t in plan) + headers + index + copied + side,
        memory_bytes=MERGE_FP32_COPIES * largest + sum(adapter[:2]),
        hint="a smaller merge.shard_size does not help (the shards add up to the same)",
    )


def _parameters(model_dir: Path) -> tuple[int, int]:
    """The parameter count and the largest tensor's element count of a model folder."""
    from release.safetensors_stream import list_checkpoint

    sizes = [info.numel for info in list_checkpoint(model_dir).values()]
    return sum(sizes), max(sizes, default=0)


def gguf_file_bytes(model_dir: Path, types: Iterable[str]) -> dict[str, int]:
    """Each GGUF type's estimated file size for the merged model in ``model_dir``: every
    tensor at the type it will be stored in (K-quants: the type llama.cpp's quantizer
    will pick, ``kquant_types``), its header entry and alignment, and the tokenizer."""
    from release.gguf_export.formats import FORMATS, storage_type, stored_nbytes
    from release.gguf_export.kquant_types import kquant_tensor_type
    from release.gguf_export.source import read_config
    from release.gguf_export.writer import UnsupportedModel, open_source

    config = read_config(model_dir)
    try:
        source = open_source(model_dir)
    except UnsupportedModel:
        source = None
    if source is not None:
        metadata = _vocab_bytes(source.vocab)
    else:  # llama.cpp's converter writes it: the tokenizer file is a generous stand-in
        tokenizer = model_dir / "tokenizer.json"
        metadata = tokenizer.stat().st_size if tokenizer.is_file() else 2**20
    layers = _hparam(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = _hparam(config, "num_attention_heads", "n_head")
    gqa = heads // (config.get("num_key_value_heads") or heads or 1)
    tensors = _gguf_tensors(model_dir, config, source, layers)
    tied = all(name != "output.weight" for name, _ in tensors)
    sizes = {}
    for gguf_type in dict.fromkeys(types):
        fmt = FORMATS[gguf_type]
        total = metadata
        for name, shape in tensors:
            if fmt.in_process:
                qtype = storage_type(fmt, name, shape)
            else:
                source_type = storage_type(FORMATS["f16"], name, shape)
                qtype = kquant_tensor_type(
                    name, shape, gguf_type, layers, source_type=source_type, gqa=gqa, tied=tied
                )
            total += stored_nbytes(shape, qtype) + _gguf_tensor_header(name, shape)
        sizes[gguf_type] = total
    return sizes


def _hparam(config: dict[str, Any], *spellings: str) -> int:
    return next((int(config[key]) for key in spellings if config.get(key)), 0)


def _gguf_tensors(
    model_dir: Path, config: dict[str, Any], source: Any, layers: int
) -> list[tuple[str, tuple[int, ...]]]:
    """Each tensor's GGUF name and shape: the built-in exporter's plan, or for a model
    llama.cpp's converter writes, the checkpoint's tensors under the GGUF names of the
    architecture named like its ``model_type`` (else llama's), where they have one: the
    names llama.cpp's quantizer chooses types by."""
    import gguf

    from release.gguf_export.formats import FORMATS
    from release.gguf_export.source import list_tensors
    from release.gguf_export.writer import plan_tensors

    if source is not None:
        planned = plan_tensors(model_dir, source.config, source.arch, FORMATS["f16"])
        return [(p.name, p.source.shape) for p in planned]
    arches = {name: arch for arch, name in gguf.MODEL_ARCH_NAMES.items()}
    arch = arches.get(config.get("model_type", ""), gguf.MODEL_ARCH.LLAMA)
    names = gguf.get_tensor_name_map(arch, layers)
    return [
        (names.get_name(t.name, try_suffixes=(".weight", ".bias")) or t.name, t.shape)
        for t in list_tensors(model_dir)
    ]


def _gguf_tensor_header(name: str, shape: tuple[int, ...]) -> int:
    """A tensor's entry in the GGUF header (name, dimensions, type, offset) plus the
    most its data's alignment can add."""
    return 8 + len(name.encode()) + 4 + 8 * len(shape) + 4 + 8 + _GGUF_TENSOR_ALIGNMENT


def _vocab_bytes(vocab: Any) -> int:
    """The tokenizer's share of a GGUF's metadata: length-prefixed strings and arrays."""
    merges = getattr(vocab.special, "merges", None) or []
    template = getattr(vocab.special, "chat_template", None) or ""
    strings = sum(8 + len(token) for token in vocab.tokens)
    strings += sum(8 + len(merge.encode()) for merge in merges)
    numbers = 4 * len(vocab.types) + (4 * len(vocab.scores) if vocab.scores is not None else 0)
    return strings + numbers + len(str(template).encode()) + 4096  # + the other keys


def gguf_needs(model_dir: Path, types: list[str]) -> Needs:
    """The GGUF files a release asks for (and a hidden f16 source the quantizer needs)."""
    from release.gguf_export.formats import FORMATS

    types = list(dict.fromkeys(types))
    quantized = [t for t in types if not FORMATS[t].in_process]
    with_source = [*types, "f16"] if quantized and "f16" not in types else types
    sizes = gguf_file_bytes(model_dir, with_source)
    parameters, largest = _parameters(model_dir)
    listed = ", ".join(f"{t} {_decimal(sizes[t])}" for t in types)
    return Needs(
        what=f"{len(types)} GGUF file{'s' if len(types) > 1 else ''} ({listed})"
        + (f" and an f16 source for {', '.join(quantized)}" if with_source != types else ""),
        output_bytes=sum(sizes.values()),
        memory_bytes=GGUF_FP32_MODELS * parameters * 4 + 2 * largest * 4,
        hint="or choose fewer gguf.types",
    )


def evaluate_needs(
    base_dir: Path, merged_dir: Path, adapter_dir: Path, *, on_accelerator: bool = False
) -> Needs:
    """The sanity eval holds the base (with the adapter) and the merged model in float32;
    on an accelerator each goes to it once loaded, so RAM holds one at a time."""
    from release import lora
    from release.safetensors_stream import list_tensors

    adapter = sum(_fp32_bytes(info.shape) for info in list_tensors(adapter_dir / lora.WEIGHTS_NAME))
    base, _ = _parameters(base_dir)
    merged, _ = _parameters(merged_dir)
    in_memory = max(base, merged) if on_accelerator else base + merged
    return Needs(
        "nothing",
        0,
        in_memory * 4 + adapter,
        hint="or skip the sanity eval with eval.enabled: false (it is what proves the merge)",
    )


def _decimal(size: int) -> str:
    from rich.filesize import decimal

    return decimal(size)
