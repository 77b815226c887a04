"""Stage: Adapter intake. Proves the adapter belongs to the base (``release.merge.intake``);
for a merge recipe without an adapter, checks the base alone (``inspect_base``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from release.core.errors import InputError
from release.core.events import Event
from release.core.manifest import Manifest
from release.merge.facts import AdapterFacts
from release.stages.base import Stage, StageContext, StageOutput, StageRun


class AdapterStage(Stage):
    name = AdapterFacts.stage
    title = "Adapter intake"

    def settings(self, spec) -> dict[str, Any]:
        """What ``run`` hands its domain (``IntakeSettings``)."""
        from release.merge.settings import IntakeSettings

        return IntakeSettings.of(spec).model_dump(mode="json")

    def input_paths(self, spec) -> list[Path]:
        """The files of what ``IntakeSettings`` holds by place: a local adapter, the
        previous releases' manifests, a local base."""
        from release.merge.settings import IntakeSettings

        intake = IntakeSettings.of(spec)
        local = intake.adapter.path if intake.adapter else None
        paths = [*([local] if local else []), *intake.previous]
        return paths + ([intake.base.path] if intake.base.path else [])

    def read_in_part(self, spec, file: Path) -> str | None:
        """A local base's safetensors files by what intake reads of them (headers and
        fingerprint windows), unless intake dequantizes the base, which reads every byte."""
        base = spec.base.path
        if base is None or spec.base.dequantize or file.suffix != ".safetensors":
            return None
        if not file.is_relative_to(base):
            return None
        from release.checkpoint.fingerprint import read_sha256

        try:
            return read_sha256(file)
        except InputError:
            return None  # not safetensors after all: keyed by content; intake says what is wrong

    def notes_when_kept(self, spec, manifest: Manifest) -> list[str]:
        from release.merge.intake import moved_since
        from release.merge.settings import IntakeSettings

        last = AdapterFacts.of(manifest)
        return moved_since(IntakeSettings.of(spec), last) if last else []

    def tools(self, spec) -> dict[str, str]:
        from importlib.metadata import version

        return {"transformers": version("transformers"), "safetensors": version("safetensors")}

    def run(self, ctx: StageContext) -> StageRun:
        from release.core.relay import relay
        from release.merge.intake import Notice, TensorChecked, inspect, inspect_base
        from release.merge.settings import IntakeSettings

        def event(item: str | Notice | TensorChecked) -> Event:
            if isinstance(item, TensorChecked):
                return ctx.progress(item.done, item.total, "tensors", item.name)
            if isinstance(item, Notice):
                return ctx.log(item.message, "warning")
            return ctx.log(item)

        intake = IntakeSettings.of(ctx.spec)  # what the key holds: intake reads only it
        last = AdapterFacts.of(ctx.manifest)  # the previous run's, until this one's is recorded
        checks = inspect if intake.adapter is not None else inspect_base
        facts = yield from relay(checks(intake, ctx.out_dir, last), event)
        return StageOutput(facts=facts)
