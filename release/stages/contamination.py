"""Stage: the contamination check (``release.evaluate.contamination``).

Needs no model: the training data of eval.contamination against the documents of the
tasks the release reports. Keyed by the check's settings, the training files, the task
folder and the stored results, so it reruns when the training data, the tasks or the
methods change, and only then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from release.evaluate.contamination.facts import ContaminationFacts
from release.spec.schema import ReleaseSpec
from release.stages.base import Stage, StageContext, StageOutput, StageRun


class ContaminationStage(Stage):
    name = ContaminationFacts.stage
    title = "Contamination check"

    def skip_reason(self, spec: ReleaseSpec) -> str | None:
        if not spec.eval.enabled:
            return "eval.enabled is false"
        return None if spec.eval.contamination is not None else "no eval.contamination"

    def settings(self, spec: ReleaseSpec) -> dict[str, Any]:
        """What ``run`` hands its domain (``ContaminationSettings``)."""
        from release.evaluate.contamination.settings import ContaminationSettings

        return ContaminationSettings.of(spec).model_dump(mode="json")

    def input_paths(self, spec: ReleaseSpec) -> list[Path]:
        from release.evaluate.contamination.training import training_files

        assert spec.eval.contamination is not None
        sources = spec.eval.contamination.training_data
        files = [file for source in sources for file in training_files(source)]
        folder = [spec.eval.tasks.folder] if spec.eval.tasks and spec.eval.tasks.folder else []
        return [*files, *folder, *spec.eval.results]

    def tools(self, spec: ReleaseSpec) -> dict[str, str]:
        import unicodedata
        from importlib.metadata import version

        return {"lm_eval": version("lm_eval"), "unicode": unicodedata.unidata_version}

    def run(self, ctx: StageContext) -> StageRun:
        from release.evaluate.contamination.run import run_check
        from release.evaluate.contamination.settings import ContaminationSettings

        settings = ContaminationSettings.of(ctx.spec)  # what the key holds: the check reads it
        facts = yield from run_check(settings, ctx.spec.base_dir, ctx.workspace, ctx)
        return StageOutput(facts=facts)
