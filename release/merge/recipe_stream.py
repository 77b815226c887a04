"""A merge recipe streamed tensor by tensor into one model folder.

The base's tensors are walked in order, as the single-adapter merge walks them
(``release.merge.stream``); for each, every step of the recipe runs in turn on the
values its models give for that tensor (a checkpoint's rows, the base's rows plus a
LoRA's delta, an earlier step's result), in float32, and the last step's result is cast
to the output dtype and written. A step whose method works row by row gets a block of
rows at a time, so what is held is a block of each input; a method that looks across a
whole tensor (a top-k, a norm) gets the whole tensor of each input. Nothing else is
held: the peak is the largest tensor's float32 copies, one per input, whatever the
model's size.

A tensor no input changes (a LoRA recipe leaves most of them alone) is the base's,
copied as bytes (or cast), not recomputed through a method that could round it.
Random methods draw per tensor from seeded generators (``methods.seeded``), so the same
recipe gives the same bytes on any machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import psutil

from cards.measured import MergeRecipeFacts
from release.checkpoint.safetensors import (
    FLOAT_DTYPES,
    TORCH_NAMES,
    OutTensor,
    ShardWriter,
    TensorInfo,
    from_float32,
    list_tensors,
    plan_shards,
    read_array,
    read_rows,
    to_float32,
)
from release.merge import lora
from release.merge.methods import METHODS, Resolved, seeded
from release.merge.recipe_card import recipe_facts
from release.merge.recipe_inputs import (
    BaseIdentity,
    Inputs,
    Source,
    is_step_base,
    layer_of,
    layer_position,
    parameter_value,
    resolve_inputs,
)
from release.merge.settings import MergeSettings
from release.merge.writer import (
    MergeResult,
    Step,
    by_rows,
    copy_side_files,
    output_dtype,
    write_config,
)
from release.spec.recipe import MergeRecipe, MergeStep

READ_BYTES = 8 * 2**20
"""float32 bytes of one input's block of rows."""


class _Reader:
    """Rows of one tensor as each source gives them, in float32, from open files."""

    def __init__(self, inputs: Inputs, files: contextlib.ExitStack) -> None:
        self.inputs = inputs
        self._files = files
        self._handles: dict[Path, BinaryIO] = {}
        self._whole: dict[tuple[str, str], np.ndarray] = {}
        self._factors: dict[tuple[str, str], lora.LoraFactors] = {}

    def handle(self, path: Path) -> BinaryIO:
        if path not in self._handles:
            files = self._files
            self._handles[path] = files.enter_context(open(path, "rb"))  # noqa: SIM115
        return self._handles[path]

    def forget(self) -> None:
        """Drop what was kept for the tensor just written."""
        self._whole.clear()
        self._factors.clear()

    def rows(self, info: TensorInfo, start: int, stop: int) -> np.ndarray:
        return to_float32(read_rows(self.handle(info.file), info, start, stop), info.dtype)

    def source_rows(self, source: Source, name: str, start: int, stop: int) -> np.ndarray:
        base_info = self.inputs.base_tensors[name]
        if source.kind == "checkpoint":
            return self.rows(source.tensors[name], start, stop)
        rows = self.rows(base_info, start, stop)
        edit = source.edits.get(name) if source.kind == "lora" else None
        if edit is None:
            return rows
        assert source.settings is not None and source.folder is not None
        adapter_file = source.folder / lora.WEIGHTS_NAME

        def read(key: str) -> np.ndarray:
            info = source.tensors[key]
            return to_float32(read_array(self.handle(adapter_file), info), info.dtype)

        if by_rows(edit, base_info, source.settings):
            key = (source.label, name)
            if key not in self._factors:
                self._factors[key] = lora.lora_factors(edit, read, source.settings)
            rows += self._factors[key].delta_rows(start, stop)
            return rows
        key = (source.label, name)
        if key not in self._whole:
            whole = self.rows(base_info, 0, _rows(base_info))
            merged = lora.merge_weight(whole.reshape(base_info.shape), edit, read, source.settings)
            self._whole[key] = merged.reshape(whole.shape)
        return self._whole[key][start:stop].copy()


def _rows(info: TensorInfo) -> int:
    return info.shape[0] if info.shape else 1


def _changed(inputs: Inputs, name: str) -> bool:
    """Whether any input's value of ``name`` differs from the base's."""
    return any(
        source.kind == "checkpoint" or (source.kind == "lora" and name in source.edits)
        for source in inputs.sources.values()
    )


def _whole(recipe: MergeRecipe) -> bool:
    return any(METHODS[step.merge_method].whole for step in recipe.steps)


def _step_result(
    number: int,
    step: MergeStep,
    name: str,
    value: Callable[[str], np.ndarray],
    mask: np.ndarray | None,
    inputs: Inputs,
) -> np.ndarray:
    """One step on one block of one tensor."""
    method = METHODS[step.merge_method]
    t = layer_position(name, inputs.layers)
    base = value(step.base_model) if step.base_model else None
    factor = _delta_factor(step, name, inputs.layers, mask)
    listed = step.models
    if method.base == "required" and method.name != "slerp":
        listed = [m for m in step.models if not is_step_base(step, method, m.model)]
    values = []
    for model in listed:
        current = value(model.model)
        if factor is not None and base is not None and model.model != step.base_model:
            current = base + factor * (current - base)
        values.append(current)
    shared = {
        p.name: _or_default(parameter_value(p.name, name, t, step.parameters), p.default)
        for p in method.parameters
        if p.scope == "shared"
    }
    if method.name == "slerp":
        shared["base_index"] = [m.model for m in step.models].index(step.base_model)
    per_input = [
        {
            p.name: _or_default(
                parameter_value(p.name, name, t, model.parameters, step.parameters), p.default
            )
            for p in method.parameters
            if p.scope == "input"
        }
        for model in listed
    ]
    seeds = (
        [seeded(step.random_seed, name, number * 1000 + index) for index in range(len(listed))]
        if method.random and step.random_seed is not None
        else []
    )
    return method.merge(base, values, Resolved(shared, per_input, seeds))


def _or_default(value, default):
    return default if value is None else value


def _delta_factor(
    step: MergeStep, name: str, layers: int, mask: np.ndarray | None
) -> np.ndarray | float | None:
    """What multiplies each input's delta on this block: the mask's rows times the
    layer's factor (None: the step has no delta_mask)."""
    if step.delta_mask is None:
        return None
    factor: np.ndarray | float = 1.0
    layer = layer_of(name)
    factors = step.delta_mask.layer_factors
    if factors and layer is not None and layer < len(factors):
        factor = np.float32(factors[layer])
    if mask is not None:
        factor = mask * np.float32(factor)
    return factor


def merge_recipe(
    recipe: MergeRecipe,
    inputs: Inputs,
    out_dir: Path,
    *,
    dtype: str = "auto",
    shard_size: int = 2 * 10**9,
) -> Generator[Step, None, MergeResult]:
    """Write the merged model folder into ``out_dir``; yields a Step per tensor."""
    base = inputs.base_tensors
    plan = [OutTensor(name, output_dtype(info, dtype), info.shape) for name, info in base.items()]
    shards = plan_shards(plan, shard_size)
    total = sum(info.nbytes for info in base.values())
    process = psutil.Process()
    peak = process.memory_info().rss
    done = merged = 0
    whole = _whole(recipe)
    masks = {
        number: {info.name: info for info in list_tensors(step.delta_mask.file)}
        for number, step in enumerate(recipe.steps)
        if step.delta_mask and step.delta_mask.file
    }
    with contextlib.ExitStack() as files, ShardWriter(out_dir, shards) as writer:
        reader = _Reader(inputs, files)
        for out in plan:
            info = base[out.name]
            if info.dtype not in FLOAT_DTYPES or not _changed(inputs, out.name):
                if out.dtype == info.dtype:
                    writer.copy(out.name, reader.handle(info.file), info)
                else:
                    rows = reader.rows(info, 0, _rows(info))
                    writer.write(out.name, from_float32(rows, out.dtype).reshape(info.shape))
            else:
                blocks = _blocks(recipe, inputs, reader, masks, out, info, whole)
                writer.write_parts(out.name, info.shape, blocks)
                merged += 1
            reader.forget()
            peak = max(peak, process.memory_info().rss)
            done += info.nbytes
            yield Step(out.name, done, total)
    written = {out.dtype for out in plan if out.dtype in FLOAT_DTYPES}
    written_dtype = TORCH_NAMES[written.pop()] if len(written) == 1 else "mixed"
    assert inputs.base.folder is not None
    write_config(inputs.base.folder, out_dir, written_dtype, None, untied=False)
    copy_side_files(inputs.base.folder, inputs.tokenizer_folder, out_dir)
    return MergeResult(
        parameters=sum(info.numel for info in base.values()),
        dtype=written_dtype,
        bytes_written=writer.bytes_written,
        shards=len(shards),
        tensors=len(plan),
        tensors_merged=merged,
        peak_rss=peak,
        tokenizer_from=inputs.tokenizer_from,
        sha256=writer.sha256,
    )


def _blocks(
    recipe: MergeRecipe,
    inputs: Inputs,
    reader: _Reader,
    masks: dict[int, dict[str, TensorInfo]],
    out: OutTensor,
    info: TensorInfo,
    whole: bool,
):
    """The merged tensor's output bytes, a block of rows at a time."""
    rows = _rows(info)
    width = info.numel // rows if rows else 0
    step_rows = rows if whole else max(1, READ_BYTES // max(1, width * 4))
    for start in range(0, rows, step_rows):
        stop = min(rows, start + step_rows)
        block = _shaped(info, start, stop)
        results: dict[str, np.ndarray] = {}  # earlier steps' results on this block
        result = None
        for number, step in enumerate(recipe.steps):
            mask_info = masks.get(number, {}).get(out.name)
            mask = reader.rows(mask_info, start, stop).reshape(block) if mask_info else None
            value = partial(_value, inputs, reader, results, out.name, start, stop, block)
            result = _step_result(number, step, out.name, value, mask, inputs)
            result = result.reshape(stop - start, width)
            if step.name:
                results[step.name] = result
        assert result is not None
        yield from_float32(np.ascontiguousarray(result, dtype=np.float32), out.dtype)


def _value(
    inputs: Inputs,
    reader: _Reader,
    results: dict[str, np.ndarray],
    name: str,
    start: int,
    stop: int,
    block: tuple[int, ...],
    ref: str,
) -> np.ndarray:
    """What the recipe's ``ref`` gives on this block: an earlier step's result, or the
    rows of one of its sources, in the tensor's own shape."""
    if ref in results:
        return results[ref].reshape(block)
    return reader.source_rows(inputs.sources[ref], name, start, stop).reshape(block)


def _shaped(info: TensorInfo, start: int, stop: int) -> tuple[int, ...]:
    """A block of rows in the tensor's own shape (the first axis cut), as methods see it."""
    if not info.shape:
        return ()
    return (stop - start, *info.shape[1:])


def recipe_merge(
    settings: MergeSettings,
    spec_dir: Path | None,
    base_dir: Path,
    base_commit: str | None,
    out_dir: Path,
) -> tuple[Generator[Step, None, MergeResult], MergeRecipeFacts]:
    """The merge stage's recipe: inputs found and checked (nothing written yet), then
    the streaming merge to run and what the card says of the recipe. ``spec_dir``: what
    the recipe's relative paths are relative to."""
    recipe, base = settings.recipe, settings.base
    assert recipe is not None
    identity = BaseIdentity(base_dir, base.repo_id, base.path)
    inputs = resolve_inputs(recipe, identity, spec_dir or Path.cwd())
    facts = recipe_facts(recipe, inputs, base.repo_id, base_commit or base.revision)
    dtype = recipe.dtype or settings.dtype
    steps = merge_recipe(recipe, inputs, out_dir, dtype=dtype, shard_size=settings.shard_size)
    return steps, facts
