"""Stage: Adapter intake. Proves the adapter belongs to the base (``release.merge.intake``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from release.core.events import Event
from release.merge.facts import AdapterFacts
from release.stages.base import Stage, StageContext, StageOutput, StageRun


class AdapterStage(Stage):
    name = AdapterFacts.stage
    title = "Adapter intake"

    def settings(self, spec) -> dict[str, Any]:
        return {
            "base": spec.base.model_dump(mode="json"),
            "allow_pickle": spec.adapter.allow_pickle,
            "allow_fingerprint_mismatch": spec.base.allow_fingerprint_mismatch,
        }

    def input_paths(self, spec) -> list[Path]:
        paths = [spec.adapter.path, *spec.eval.previous]
        return paths + ([spec.base.path] if spec.base.path else [])

    def tools(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"transformers": version("transformers"), "safetensors": version("safetensors")}

    def run(self, ctx: StageContext) -> StageRun:
        from release.core.relay import relay
        from release.merge.intake import TensorChecked, inspect

        def event(item: str | TensorChecked) -> Event:
            if isinstance(item, TensorChecked):
                return ctx.progress(item.done, item.total, "tensors", item.name)
            return ctx.log(item)

        facts = yield from relay(inspect(ctx.spec, ctx.out_dir), event)
        return StageOutput(facts=facts)
