"""Stage: GGUF export of the merged model, checked by llama.cpp.

Reads ``<workspace>/merge`` and writes ``<workspace>/gguf/<name>-<TYPE>.gguf`` for each
type in ``gguf.types``. The work lives in ``release.gguf`` (imported inside
``run`` so the CLI starts without gguf or torch); this module says what the stage
depends on and what it records.

Facts: ``files`` (one record per file: name, type, exporter, bytes, sha256, top-1
agreement and max abs logit difference against the merged model per loader, the
tolerance it passed, whether llama.cpp's tokenizer agreed, the smoke answer),
``architecture``, ``exporter``, ``probe_prompts``, ``probe_positions``, ``smoke_prompt``,
``smoke_reference_output`` (the merged model's own answer).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from release.gguf.facts import GGUFFacts
from release.merge.facts import AdapterFacts, MergeFacts
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
    depends_on = (MergeFacts.stage,)

    def skip_reason(self, spec: ReleaseSpec) -> str | None:
        return None if spec.gguf.types else "gguf.types is empty"

    def settings(self, spec: ReleaseSpec) -> dict[str, Any]:
        return {
            "types": list(dict.fromkeys(spec.gguf.types)),
            "llama_cpp_dir": str(spec.gguf.llama_cpp_dir) if spec.gguf.llama_cpp_dir else None,
            "name": spec.name,
            "version": spec.version,
            "license": spec.card.license,
            "base_model": spec.base.repo_id,
            "repo_id": spec.push.gguf_repo_id or spec.push.repo_id,
            "tags": spec.card.tags,
            "language": spec.card.language,
            "datasets": spec.card.datasets,
            "tools": self.tools(),  # a new gguf-py or llama.cpp may write other bytes
        }

    def tools(self) -> dict[str, str]:
        found = {"gguf": _version("gguf"), "llama_cpp": _version("llama_cpp_python")}
        return {tool: v for tool, v in found.items() if v}

    def run(self, ctx: StageContext) -> StageRun:
        from release.gguf.build import build_gguf_files, release_metadata
        from release.gguf.needs import gguf_needs
        from release.preflight import check

        merged = ctx.stage_dir(MergeFacts.stage)
        intake = AdapterFacts.of(ctx.manifest)
        meta = release_metadata(ctx.spec, intake)
        needs = gguf_needs(merged, ctx.spec.gguf.types, meta, ctx.spec.gguf.llama_cpp_dir)
        estimates, measured = yield from check(ctx, ctx.workspace, needs)
        built = yield from build_gguf_files(ctx.spec, merged, ctx.out_dir, ctx, intake)
        facts = built.facts.model_copy(update={"tools": self.tools(), **estimates})
        timings = {"export_seconds": built.export_seconds, "check_seconds": built.check_seconds}
        return StageOutput(
            facts=facts,
            measured={**measured, **timings},
            hashed={file.name: file.sha256 for file in facts.files},
        )
