"""From a release (spec + manifest) to what the cards say: no number is typed by hand.

The manifest's facts are measured by the stages; this module only selects them into the
typed facts cards/ renders (``cards.measured``), and builds the card metadata from the
spec. Light on purpose (no torch): ``card build`` runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from cards.measured import ContaminationFacts as CardContamination
from cards.measured import (
    ContaminationMethod,
    ContaminationSkipped,
    ContaminationTask,
    EquivalenceFacts,
    GGUFBuildFacts,
    LoraFacts,
    MeasuredFacts,
    MergeGateFacts,
    MergeInputFigure,
    PerplexityFacts,
    QuantLossFacts,
    SanityFacts,
    SmokeFacts,
)
from cards.measured import GGUFFileFacts as GGUFFileRow
from cards.measured import ProjectorFacts as MmprojFacts
from cards.records import EvalRecord
from cards.render import CardContext
from cards.schema import CardMetadata
from release.core.manifest import Manifest
from release.evaluate.contamination.facts import ContaminationFacts
from release.evaluate.facts import EvaluateFacts
from release.evaluate.scores import ReleaseScores
from release.gguf.facts import GGUFFacts, GGUFFileFacts, ProjectorFacts
from release.merge.facts import AdapterFacts, MergeFacts
from release.report.card_settings import CardSettings
from release.report.history import history, history_facts, model_tools

PLACEHOLDER_OWNER = "your-name"
"""Owner shown in usage snippets while push.repo_id is not set yet."""

LICENSE_LINKS = {"gemma": "https://ai.google.dev/gemma/terms"}
"""Terms a license id names without an SPDX text: linked when the spec gives no link."""
WITH_TOWERS = "image-text-to-text"
"""The Hub's pipeline tag for a checkpoint that still has its vision tower (Gemma 4)."""

Kind = Literal["merged", "adapter", "gguf"]


_RELATION = {"merged": "finetune", "adapter": "adapter", "gguf": "quantized"}


def card_facts(manifest: Manifest, folder: Path | None = None) -> MeasuredFacts:
    """The stages' fact records, as the typed facts cards/ renders (what
    ``card build --facts`` reads from a facts.json). ``folder``, where the manifest lies,
    is where its chain of previous releases starts (the card's release history)."""
    adapter = AdapterFacts.of(manifest) or AdapterFacts()
    merge = MergeFacts.of(manifest) or MergeFacts()
    evaluate = EvaluateFacts.of(manifest) or EvaluateFacts()
    gguf = GGUFFacts.of(manifest) or GGUFFacts()
    lora = LoraFacts(
        r=adapter.r,
        alpha=adapter.lora_alpha,
        dropout=adapter.lora_dropout,
        target_modules=adapter.target_modules,
        use_rslora=adapter.use_rslora,
        use_dora=adapter.use_dora,
        init_lora_weights=adapter.init_lora_weights,
        qlora=True if adapter.dequantized_base else None,
    )
    return MeasuredFacts(
        base_parameters=adapter.base_parameters,
        trainable_parameters=adapter.trainable_parameters,
        adapter_bytes=adapter.adapter_bytes,
        base_revision=adapter.base_commit or adapter.base_revision,
        adapter_revision=_at(adapter.adapter_repo_id, adapter.adapter_commit),
        architecture=merge.architecture or adapter.base_model_class,
        dtype=merge.dtype or adapter.base_dtype,
        merged_bytes=merge.bytes_written,
        context_length=merge.context_length,
        vocab_size=merge.vocab_size,
        peft_type=adapter.peft_type,
        base_model_citation="\n\n".join(adapter.base_citations) or None,
        lora=lora if lora.model_dump(exclude_none=True) else None,
        dequantized_base=adapter.dequantized_base,
        sanity=_sanity(evaluate),
        towers=_towers(merge, gguf) or None,
        chat_template=merge.chat_template,
        gguf_files=_gguf_files(gguf.files),
        mmproj=_mmproj(gguf.projector),
        gguf_build=_gguf_build(gguf),
        versions=model_tools(manifest),
        history=history_facts(history(manifest, folder)) if folder else None,
        contamination=_contamination(manifest),
        merge_recipe=merge.recipe,
    )


def _sanity(evaluate: EvaluateFacts) -> SanityFacts:
    """The evaluate stage's own checks."""
    eq, ppl = evaluate.equivalence, evaluate.perplexity
    return SanityFacts(
        equivalence=EquivalenceFacts(
            positions=eq.positions,
            top1_agreement=eq.top1_agreement,
            relative_error=eq.relative_error,
        )
        if eq
        else None,
        perplexity=PerplexityFacts(tokens=ppl.tokens, base=ppl.base, merged=ppl.merged)
        if ppl
        else None,
        smoke=[
            SmokeFacts(prompt=s.prompt, output=s.output, passed=s.passed) for s in evaluate.smoke
        ],
        device=evaluate.device,
        **_merge_inputs(evaluate),
    )


def _merge_inputs(evaluate: EvaluateFacts) -> dict:
    """A merge recipe's inputs beside the merged model, and its gate, as the card shows them."""
    inputs = evaluate.merge_inputs
    if inputs is None:
        return {}
    gate = inputs.gate
    merged = evaluate.harness.results if evaluate.harness else []

    def scores(results: list[EvalRecord]) -> list[float | None]:
        values = {record.key: record.value for record in results}
        return [values.get(record.key) for record in merged]

    return {
        "merge_inputs": [
            MergeInputFigure(
                name=m.name, kind=m.kind, perplexity=m.perplexity, scores=scores(m.results)
            )
            for m in inputs.models
        ],
        "merge_gate": MergeGateFacts(name=gate.name, tolerance=gate.tolerance, limit=gate.limit)
        if gate
        else None,
        "merge_score_labels": [record.label for record in merged],
        "merge_scores": [record.value for record in merged],
    }


def _contamination(manifest: Manifest) -> CardContamination | None:
    """The contamination check's facts, as the card's "Contamination check" section reads
    them (``templates/_contamination.md.j2``)."""
    checked = ContaminationFacts.of(manifest)
    if checked is None:
        return None
    return CardContamination(
        training=checked.training,
        segments=checked.segments,
        methods=[
            ContaminationMethod(key=m.key, label=m.label, description=m.description)
            for m in checked.methods
        ],
        tasks=[
            ContaminationTask(
                task=t.task,
                documents=t.documents,
                contaminated=t.contaminated,
                any_method=t.any_method,
                share=t.share,
                marked=t.marked,
            )
            for t in checked.tasks
        ],
        skipped=[ContaminationSkipped(task=s.task, reason=s.reason) for s in checked.skipped],
        max_share=checked.max_share,
    )


def _towers(merge: MergeFacts, gguf: GGUFFacts) -> list[str]:
    """The towers the released checkpoint keeps, as its merged config says; a manifest
    whose merge predates that fact shows them through the GGUF stage's projector."""
    return merge.towers or (gguf.projector.towers if gguf.projector else [])


def _mmproj(projector: ProjectorFacts | None) -> MmprojFacts | None:
    """The towers' projector file, which llama.cpp loads beside each text GGUF."""
    if projector is None:
        return None
    return MmprojFacts(
        name=projector.name,
        towers=projector.towers,
        bytes=projector.bytes,
        sha256=projector.sha256,
    )


def _gguf_build(gguf: GGUFFacts) -> GGUFBuildFacts | None:
    """The llama.cpp that wrote (its converter, its quantizer) and verified (its runtime)
    the files, the writers each file names, and the tokens per position the files were
    compared on (the merged model's reference keeps its top k)."""
    if not gguf.files:
        return None
    build = gguf.llama_cpp
    writers = [file.exporter for file in gguf.files if file.exporter]
    quality = next((file.quality for file in gguf.files if file.quality), None)
    return GGUFBuildFacts(
        llama_cpp=build.label if build else None,
        commit=build.commit if build else None,
        writers=list(dict.fromkeys(writers)),
        reference_top_k=gguf.reference.top_k if gguf.reference else None,
        loss_text=quality.text if quality else None,
        loss_tokens=quality.tokens if quality else None,
        loss_limited=quality.limited if quality else None,
        loss_chunk=quality.chunk if quality else None,
        max_kld=quality.max_kld if quality else None,
    )


def _at(repo_id: str | None, commit: str | None) -> str | None:
    return f"{repo_id}@{commit}" if repo_id and commit else None


def _gguf_files(files: list[GGUFFileFacts]) -> list[GGUFFileRow]:
    """The GGUF files' rows; the smallest whose loss was measured under the limit is
    the recommended one."""
    measured = [f for f in files if f.quality and f.quality.kld_mean <= f.quality.max_kld]
    smallest = min(measured, key=lambda f: f.bytes).name if measured else None
    return [_gguf_file(file, recommended=file.name == smallest) for file in files]


def _gguf_file(file: GGUFFileFacts, *, recommended: bool) -> GGUFFileRow:
    """One GGUF file's row: its numbers as llama.cpp measured them (what GGUF users run)."""
    quality = file.quality
    loss = None
    if quality is not None:
        loss = QuantLossFacts(
            kld_mean=quality.kld_mean,
            kld_p99=quality.kld_p99,
            same_top1=quality.same_top1,
            ppl_ratio=quality.ppl_ratio,
        )
    return GGUFFileRow(
        name=file.name,
        type=file.type,
        bytes=file.bytes,
        sha256=file.sha256,
        top1_agreement=file.top1_agreement.get("llama_cpp"),
        max_abs_diff=file.max_abs_diff.get("llama_cpp"),
        loss=loss,
        recommended=recommended,
    )


def has_gguf_files(manifest: Manifest) -> bool:
    return bool((facts := GGUFFacts.of(manifest)) and facts.files)


def repo_ids(settings: CardSettings) -> dict[Kind, str]:
    """The repo of each card; a placeholder owner while push.repo_id is not set."""
    merged = settings.repo_id or f"{PLACEHOLDER_OWNER}/{settings.name}"
    return {
        "merged": merged,
        "gguf": settings.gguf_repo_id or f"{merged}-GGUF",
        "adapter": settings.adapter_repo_id or f"{merged}-LoRA",
    }


def _pipeline_tag(settings: CardSettings, manifest: Manifest | None) -> str:
    """The spec's tag; left at its default, the one for a model with a vision tower
    when the released checkpoint keeps one."""
    merge = MergeFacts.of(manifest) or MergeFacts()
    gguf = GGUFFacts.of(manifest) or GGUFFacts()
    if not settings.pipeline_tag_given and "vision" in _towers(merge, gguf):
        return WITH_TOWERS
    return settings.card.pipeline_tag


def card_metadata(
    settings: CardSettings, kind: Kind, manifest: Manifest | None = None
) -> CardMetadata:
    card = settings.card
    base: str | list[str] | None = (
        repo_ids(settings)["merged"] if kind == "gguf" else settings.base_model
    )
    recipe = (MergeFacts.of(manifest) or MergeFacts()).recipe if manifest else None
    relation = _RELATION[kind]
    tags = [*card.tags, "model-release"]
    if recipe is not None and kind == "merged":
        base = [i.repo_id for i in recipe.inputs if i.repo_id] or base
        relation = "merge"
        tags += ["merge", *(["mergekit"] if recipe.mergekit_compatible else [])]
    data: dict[str, Any] = {
        "license": card.license,
        "license_name": card.license_name,
        "license_link": card.license_link or LICENSE_LINKS.get(card.license),
        "language": card.language or None,
        "tags": list(dict.fromkeys(tags)),
        "datasets": card.datasets or None,
        "pipeline_tag": _pipeline_tag(settings, manifest),
        "library_name": {"merged": "transformers", "adapter": "peft", "gguf": None}[kind],
        "base_model": base,
        "base_model_relation": relation if base else None,
    }
    return CardMetadata.model_validate({k: v for k, v in data.items() if v is not None})


def _quant_scores(manifest: Manifest) -> dict[str, list[EvalRecord]]:
    """The release's tasks on its GGUF files, by quant type (eval.tasks.gguf)."""
    gguf = GGUFFacts.of(manifest)
    return {run.type: run.results for run in gguf.benchmarks} if gguf else {}


def card_context(
    settings: CardSettings, manifest: Manifest, kind: Kind, scores: ReleaseScores, workspace: Path
) -> CardContext:
    """The context of one card; ``scores`` are the release's (``release_scores``), shown
    on the GGUF repo's card only beside its files' own; ``workspace``: where the stages'
    files are."""
    ids = repo_ids(settings)
    quants = _quant_scores(manifest)
    # the GGUF repo's card shows the release's scores only beside its files' (eval.tasks.gguf)
    records = scores.records if kind != "gguf" or quants else []
    baseline = scores.baseline if records else []
    return CardContext(
        metadata=card_metadata(settings, kind, manifest),
        repo_id=ids["adapter"] if kind == "adapter" else ids["merged"],
        model_name=settings.name,
        gguf_repo_id=ids["gguf"] if has_gguf_files(manifest) else None,
        summary=settings.card.summary,
        intended_uses=settings.card.intended_uses,
        limitations=settings.card.limitations,
        training_data=settings.card.training_data,
        facts=card_facts(manifest, workspace),
        records=records,
        baseline=baseline,
        quants=quants if records else {},
        citations=[settings.card.bibtex] if settings.card.bibtex.strip() else [],
    )
