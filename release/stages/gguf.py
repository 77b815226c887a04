"""Stage: GGUF export of the merged model, checked by llama.cpp.

Reads ``<workspace>/merge`` and writes ``<workspace>/gguf/<name>-<TYPE>.gguf`` for each
type in ``gguf.types``. The work lives in ``release.gguf`` (imported inside
``run`` so the CLI starts without gguf or torch); this module says what the stage
depends on and what it records.

Facts: ``files`` (one record per file: name, type, exporter, bytes, sha256, top-1
agreement and max abs logit difference against the merged model per loader, the
tolerance it passed, whether llama.cpp's tokenizer agreed, the smoke answer),
``architecture``, ``exporter``, ``probe_prompts``, ``probe_positions``, ``smoke_prompt``,
``smoke_reference_output`` (the merged model's own answer), ``reference_source`` and
``reference`` (the merged model's reference the files were compared with), and with
eval.tasks.gguf ``benchmarks``: the release's lm-eval tasks on the files of those types,
run after their checks (``release.evaluate.harness.run_gguf_tasks``).

The reference is the evaluate stage's (its run of the merged model, kept in its folder:
``release.reference``), read here with no model loaded; the stage's key holds that
part of the evaluate stage alone (``upstream_part``), so a change to the eval's tasks or
gate leaves the GGUF files done. Where the evaluate stage is off, or kept no reference
of this merged model on this probe, the stage computes the reference itself.
"""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

from release.evaluate.facts import EvaluateFacts
from release.gguf.facts import GGUFFacts
from release.merge.facts import AdapterFacts, MergeFacts
from release.reference import probe as probes
from release.reference.facts import model_identity
from release.spec.schema import ReleaseSpec
from release.stages.base import Stage, StageContext, StageOutput, StageRun


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


class GGUFStage(Stage):
    name = GGUFFacts.stage
    title = "GGUF export"
    depends_on = (MergeFacts.stage, EvaluateFacts.stage)
    upstream_part: ClassVar[dict[str, str]] = {EvaluateFacts.stage: "reference"}

    def skip_reason(self, spec: ReleaseSpec) -> str | None:
        return None if spec.gguf.types else "gguf.types is empty"

    def settings(self, spec: ReleaseSpec) -> dict[str, Any]:
        """What ``run`` hands its domain (``GGUFSettings``), and the tools and probe
        that shape the files' bytes and checks."""
        from release.gguf.settings import GGUFSettings

        return GGUFSettings.of(spec).model_dump(mode="json") | {
            "tools": self.tools(spec),  # a new gguf-py or llama.cpp may write other bytes
            "probe": probes.PROBE.digest,
        }

    def tools(self, spec: ReleaseSpec) -> dict[str, str]:
        """The tools that shape the files and their figures: lm-eval too where the
        files run eval.tasks (eval.tasks.gguf)."""
        from release.gguf.settings import GGUFSettings

        found = {"gguf": _version("gguf"), "llama_cpp": _version("llama_cpp_python")}
        if GGUFSettings.of(spec).benchmarks is not None:
            found["lm_eval"] = _version("lm_eval")
        return {tool: v for tool, v in found.items() if v}

    def input_paths(self, spec: ReleaseSpec) -> list[Path]:
        """The task folder of eval.tasks, where the files run its tasks."""
        from release.gguf.settings import GGUFSettings

        benchmarks = GGUFSettings.of(spec).benchmarks
        return [benchmarks.folder] if benchmarks and benchmarks.folder else []

    def run(self, ctx: StageContext) -> StageRun:
        from release.gguf.build import build_gguf_files, release_metadata
        from release.gguf.needs import gguf_needs
        from release.gguf.settings import GGUFSettings
        from release.preflight import check

        settings = GGUFSettings.of(ctx.spec)  # what the key holds: the export reads only it
        merged = ctx.stage_dir(MergeFacts.stage)
        intake = AdapterFacts.of(ctx.manifest)
        meta = release_metadata(settings, intake)
        model_id, kept = _kept_reference(ctx)
        needs = gguf_needs(
            merged,
            settings.types,
            meta,
            settings.llama_cpp_dir,
            reference_here=kept is None,
            benchmarked=settings.benchmarked_types,
        )
        estimates, measured = yield from check(ctx, ctx.workspace, needs)
        if kept is None and EvaluateFacts.of(ctx.manifest) is not None:
            yield ctx.log(
                "the evaluate stage kept no reference of this merged model on this probe; "
                "computing it here",
                "warning",
            )
        built = yield from build_gguf_files(
            settings, merged, ctx.out_dir, ctx, intake, kept, model_id
        )
        facts = built.facts.model_copy(update={"tools": self.tools(ctx.spec), **estimates})
        timings = {"export_seconds": built.export_seconds, "check_seconds": built.check_seconds}
        if settings.benchmarks is not None:
            started = time.monotonic()
            benchmarks = yield from _benchmarks(settings, facts, ctx)
            facts = facts.model_copy(update={"benchmarks": benchmarks})
            timings["benchmark_seconds"] = round(time.monotonic() - started, 1)
        return StageOutput(
            facts=facts,
            measured={**measured, **timings},
            hashed={file.name: file.sha256 for file in facts.files},
        )


def _benchmarks(settings, facts: GGUFFacts, ctx: StageContext):
    """eval.tasks on the files of eval.tasks.gguf's types, after their checks, each
    against the merged model's scores (a file that drops too far is refused at once)."""
    from release.evaluate.gate import judge_quant
    from release.evaluate.harness import run_gguf_tasks
    from release.gguf.facts import QuantScoresFacts, TaskDropFacts

    evaluated = EvaluateFacts.of(ctx.manifest)
    merged = evaluated.results if evaluated else []
    names = {file.type: file.name for file in facts.files}
    runs = []
    for quant in settings.benchmarked_types:
        scores = yield from run_gguf_tasks(settings.benchmarks, ctx.out_dir / names[quant], ctx)
        compared = judge_quant(names[quant], quant, merged, scores, settings.max_task_drop)
        drops = [
            TaskDropFacts(
                task=c.task,
                metric=c.metric,
                filter=c.filter,
                merged=c.previous,
                value=c.current,
                drop=round(c.drop, 6),
            )
            for c in compared
        ]
        runs.append(
            QuantScoresFacts(
                type=quant,
                file=names[quant],
                results=scores,
                compared=drops,
                max_task_drop=settings.max_task_drop,
            )
        )
    return runs


def _kept_reference(ctx: StageContext):
    """The merged model's identity, and the evaluate stage's reference when it is of this
    merged model on this probe (None: the stage computes its own)."""
    from release.gguf.reference_process import KeptReference

    merge = ctx.manifest.stages.get(MergeFacts.stage)
    model_id = model_identity(merge.outputs) if merge else None
    evaluate = EvaluateFacts.of(ctx.manifest)
    kept = evaluate.reference if evaluate else None
    path = ctx.stage_dir(EvaluateFacts.stage) / kept.file if kept else None
    if kept is None or not kept.matches(model_id, probes.PROBE.digest) or not path.is_file():
        return model_id, None
    return model_id, KeptReference(kept, path, EvaluateFacts.stage)
