"""What a merge will write and hold at its peak, from the headers alone (the preflight).

The output is every tensor at the merge dtype, laid out by the merge's own shard plan,
plus the small files it copies. The peak is the largest of what one tensor's merge holds,
plus the two largest adapter tensors: a tensor merged or cast a block of rows at a time
(``writer.by_rows``: a plain LoRA on a matrix, a cast, a copy) holds a read chunk's
float32 working copies (read, merged, delta, cast: about three), whatever its size; one
taken whole (a modules_to_save replacement, DoRA, trainable tokens) holds the whole
tensor's, and an initialization that moves the base (PiSSA, OLoRA) the float32 copies
of its residual. So Gemma-4-E4B's 2.8B-parameter per-layer embedding table, which an
adapter on the projections leaves alone, counts as a chunk, not as 34 GB.

A merge recipe's peak is its methods' (``recipe_peak``): each step holds, of the block
it is given, the copies its method holds per input and besides (``Method.held``),
beside the results of the named steps before it; the block is the largest tensor
whole when a method looks across whole tensors (ties, dare, della, slerp), else a block
of rows (``recipe_stream.READ_BYTES``). A LoRA input's factors (rank x width) are small
beside these and not counted.
"""

from __future__ import annotations

import json
from pathlib import Path

from release.checkpoint.safetensors import (
    DTYPE_BYTES,
    OutTensor,
    TensorInfo,
    list_checkpoint,
    list_tensors,
    plan_shards,
)
from release.merge import initialization, lora
from release.merge.blocks import READ_BYTES
from release.merge.intake import TARGETS_NAME
from release.merge.writer import COPIED_FILES, by_rows, moves_base, output_dtype
from release.preflight import Needs
from release.spec.recipe import MergeRecipe

MERGE_FP32_COPIES = 3
"""The largest tensor's float32 copies at a merge's peak: weight, delta, the cast."""
_SAFETENSORS_HEADER_PER_TENSOR = 160
"""Bytes of a safetensors header entry (name, dtype, shape, offsets), generously."""


UNCHANGED_COPIES = 2
"""A tensor no input of a recipe changes, cast to the output dtype: its float32 copy and
the cast."""
MASKED_COPIES = 3
"""A step with a delta_mask: the mask's block, and the masked delta's two temporaries."""


def recipe_peak(recipe: MergeRecipe, largest: int) -> int:
    """What a recipe's merge holds at its peak, for a largest tensor of ``largest``
    float32 bytes."""
    from release.merge.methods import METHODS
    from release.merge.recipe_stream import READ_BYTES as RECIPE_READ_BYTES

    whole = any(METHODS[step.merge_method].whole for step in recipe.steps)
    block = largest if whole else min(largest, RECIPE_READ_BYTES)
    copies = []
    for number, step in enumerate(recipe.steps):
        kept = sum(1 for earlier in recipe.steps[:number] if earlier.name)
        per_input, besides = METHODS[step.merge_method].held
        masked = MASKED_COPIES if step.delta_mask is not None else 0
        copies.append(kept + per_input * len(step.models) + besides + masked)
    return max(UNCHANGED_COPIES * largest, block * max(copies))


def merge_needs(
    base_dir: Path,
    adapter_dir: Path | None,
    dtype: str,
    shard_size: int,
    recipe: MergeRecipe | None = None,
) -> Needs:
    """The merged folder's bytes (its shard plan, the copied files) and the merge's peak:
    of the adapter in ``adapter_dir``, or of ``recipe``."""
    folders = [base_dir] if adapter_dir is None else [base_dir, adapter_dir]
    base = list_checkpoint(base_dir)
    plan = [OutTensor(name, output_dtype(info, dtype), info.shape) for name, info in base.items()]
    shards = plan_shards(plan, shard_size)
    headers = sum(8 + _SAFETENSORS_HEADER_PER_TENSOR * len(shard) for shard in shards)
    index = 64 * len(plan) if len(shards) > 1 else 0
    copied = sum(
        max(
            (folder / name).stat().st_size if (folder / name).is_file() else 0 for folder in folders
        )
        for name in COPIED_FILES
    )
    side = sum(p.stat().st_size for p in [base_dir / "config.json", *base_dir.glob("*.py")])
    weights = [] if adapter_dir is None else list_tensors(adapter_dir / lora.WEIGHTS_NAME)
    adapter = sorted((4 * info.numel for info in weights), reverse=True)
    largest = max((4 * info.numel for info in base.values()), default=0)
    working = MERGE_FP32_COPIES * largest if recipe is None else recipe_peak(recipe, largest)
    if adapter_dir is not None:
        working = _adapter_working(base, adapter_dir, weights)
    return Needs(
        what="the merged model",
        output_bytes=sum(t.nbytes for t in plan) + headers + index + copied + side,
        memory_bytes=working + sum(adapter[:2]),
        hint="a smaller merge.shard_size does not help (the shards add up to the same)",
    )


def _adapter_working(
    base: dict[str, TensorInfo], adapter_dir: Path, weights: list[TensorInfo]
) -> int:
    """The float32 bytes one adapter's merge holds for its largest tensor (``merge_streaming``'s
    paths); the adapter's own tensors aside."""
    _, settings = lora.read_adapter_config(adapter_dir)
    edits = lora.group_edits([info.name for info in weights], adapter_dir / lora.WEIGHTS_NAME)
    targets = _targets(adapter_dir, edits, base)
    by_target = {
        targets[parameter]: edit for parameter, edit in edits.items() if parameter in targets
    }
    sizes = {info.name: info.numel for info in weights}
    held = [  # a tensor the base lacks (an untied head): its replacement, whole
        MERGE_FP32_COPIES * 4 * sizes[edit.replacement]
        for name, edit in by_target.items()
        if name not in base and edit.replacement in sizes
    ]
    for name, info in base.items():
        edit = by_target.get(name)
        if by_rows(edit, info, settings):
            read = min(info.nbytes, READ_BYTES)
            held.append(MERGE_FP32_COPIES * 4 * (read // max(1, DTYPE_BYTES[info.dtype])))
        elif moves_base(edit, settings):
            held.append(initialization.FLOAT32_COPIES * 4 * info.numel)
        else:
            held.append(MERGE_FP32_COPIES * 4 * info.numel)
    return max(held, default=0)


def _targets(adapter_dir: Path, edits: dict, base: dict[str, TensorInfo]) -> dict[str, str]:
    """Each edited parameter's checkpoint name: intake's placement (``TARGETS_NAME``, in the
    adapter stage's folder), else the same name where the base has it. An edit placed
    nowhere counts as the largest tensor, taken whole."""
    placed = adapter_dir / TARGETS_NAME
    if placed.is_file():
        return json.loads(placed.read_text(encoding="utf-8"))
    largest = max(base, key=lambda name: base[name].numel, default=None)
    return {p: p if p in base else largest for p in edits if largest is not None}
