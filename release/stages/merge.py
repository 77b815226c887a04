"""Stage: Merge. Streams the base through the adapter into a complete HF model folder
(``release.merge.stream``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from release.merge.facts import AdapterFacts, MergeFacts
from release.stages.base import Stage, StageContext, StageOutput, StageRun


class MergeStage(Stage):
    name = MergeFacts.stage
    title = "Merge"
    depends_on = (AdapterFacts.stage,)

    def settings(self, spec) -> dict[str, Any]:
        """What ``run`` hands its domain (``MergeSettings``)."""
        from release.merge.settings import MergeSettings

        return MergeSettings.of(spec).model_dump(mode="json")

    def input_paths(self, spec) -> list[Path]:
        from release.merge.recipe_inputs import local_paths

        recipe = spec.merge.recipe
        inputs = local_paths(recipe, spec.base_dir or Path.cwd()) if recipe else []
        return ([spec.base.path] if spec.base.path else []) + inputs

    def tools(self, spec) -> dict[str, str]:
        from importlib.metadata import version

        return {"torch": version("torch"), "safetensors": version("safetensors")}

    def run(self, ctx: StageContext) -> StageRun:
        from release.checkpoint.base import resolve_base_dir
        from release.checkpoint.config import has_chat_template, read_config, text_config, towers
        from release.core.relay import relay
        from release.merge.intake import TARGETS_NAME
        from release.merge.needs import merge_needs
        from release.merge.recipe_stream import recipe_merge
        from release.merge.settings import MergeSettings
        from release.merge.stream import merge_streaming
        from release.preflight import check

        merge = MergeSettings.of(ctx.spec)  # what the key holds: the merge reads only it
        adapter_dir = ctx.stage_dir(AdapterFacts.stage)
        intake = AdapterFacts.of(ctx.manifest)
        commit = intake.base_commit if intake else None
        base_dir = resolve_base_dir(merge.base, commit, adapter_dir)
        lora_dir = adapter_dir if merge.recipe is None else None  # a recipe's inputs: its own
        needs = merge_needs(base_dir, lora_dir, merge.dtype, merge.shard_size, merge.recipe)
        estimates, measured = yield from check(ctx, ctx.workspace, needs)
        recipe = None
        if merge.recipe is not None:
            steps, recipe = recipe_merge(merge, ctx.spec.base_dir, base_dir, commit, ctx.out_dir)
        else:
            targets = json.loads((adapter_dir / TARGETS_NAME).read_text(encoding="utf-8"))
            steps = merge_streaming(
                base_dir,
                adapter_dir,
                targets,
                ctx.out_dir,
                dtype=merge.dtype,
                shard_size=merge.shard_size,
            )
        result = yield from relay(
            steps, lambda step: ctx.progress(step.done, step.total, "bytes", step.tensor)
        )
        written = read_config(ctx.out_dir)
        config = text_config(written)
        facts = MergeFacts(
            merged_parameters=result.parameters,
            dtype=result.dtype,
            bytes_written=result.bytes_written,
            shards=result.shards,
            tensors=result.tensors,
            tensors_merged=result.tensors_merged,
            tokenizer_from=result.tokenizer_from,
            architecture=(config.get("architectures") or [None])[0],
            context_length=config.get("max_position_embeddings"),
            vocab_size=config.get("vocab_size"),
            towers=towers(written),
            chat_template=has_chat_template(ctx.out_dir),
            recipe=recipe,
            **estimates,
        )
        return StageOutput(
            facts=facts,
            measured={"peak_rss_bytes": result.peak_rss, **measured},
            hashed=result.sha256,
        )
