"""From a release (spec + manifest) to what the cards say: no number is typed by hand.

The manifest's facts are measured by the stages; this module only selects and renames
them into the plain facts dict ``cards.render`` understands, and builds the card
metadata from the spec. Light on purpose (no torch): ``card build`` runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from cards.evals import load_results
from cards.render import CardContext
from cards.schema import CardMetadata
from release.core.manifest import Manifest
from release.evaluate.facts import EvaluateFacts
from release.evaluate.harness import BASE_HARNESS_DIR, HARNESS_DIR, produced_results
from release.gguf.facts import GGUFFacts, GGUFFileFacts, ProjectorFacts
from release.merge.facts import AdapterFacts, MergeFacts
from release.report.history import history, history_facts, model_tools
from release.spec.schema import ReleaseSpec

PLACEHOLDER_OWNER = "your-name"
"""Owner shown in usage snippets while push.repo_id is not set yet."""

LICENSE_LINKS = {"gemma": "https://ai.google.dev/gemma/terms"}
"""Terms a license id names without an SPDX text: linked when the spec gives no link."""
WITH_TOWERS = "image-text-to-text"
"""The Hub's pipeline tag for a checkpoint that still has its vision tower (Gemma 4)."""

Kind = Literal["merged", "adapter", "gguf"]


_RELATION = {"merged": "finetune", "adapter": "adapter", "gguf": "quantized"}


def card_facts(manifest: Manifest, folder: Path | None = None) -> dict[str, Any]:
    """The stages' typed facts, selected and renamed into the facts dict cards/ renders
    (the format ``card build --facts`` reads). ``folder``, where the manifest lies, is
    where its chain of previous releases starts (the card's release history)."""
    adapter = AdapterFacts.of(manifest) or AdapterFacts()
    merge = MergeFacts.of(manifest) or MergeFacts()
    evaluate = EvaluateFacts.of(manifest) or EvaluateFacts()
    gguf = GGUFFacts.of(manifest) or GGUFFacts()
    facts: dict[str, Any] = {
        "base_parameters": adapter.base_parameters,
        "trainable_parameters": adapter.trainable_parameters,
        "adapter_bytes": adapter.adapter_bytes,
        "base_revision": adapter.base_commit or adapter.base_revision,
        "adapter_revision": _at(adapter.adapter_repo_id, adapter.adapter_commit),
        "architecture": merge.architecture or adapter.base_model_class,
        "dtype": merge.dtype or adapter.base_dtype,
        "merged_bytes": merge.bytes_written,
        "context_length": merge.context_length,
        "vocab_size": merge.vocab_size,
        "peft_type": adapter.peft_type,
        "base_model_citation": "\n\n".join(adapter.base_citations) or None,
        "lora": {
            "r": adapter.r,
            "alpha": adapter.lora_alpha,
            "dropout": adapter.lora_dropout,
            "target_modules": adapter.target_modules,
            "use_rslora": adapter.use_rslora,
            "use_dora": adapter.use_dora,
            "qlora": True if adapter.dequantized_base else None,
        },
        "dequantized_base": adapter.dequantized_base,
        "sanity": evaluate.model_dump(
            mode="json", include={"equivalence", "perplexity", "smoke", "gate", "device"}
        ),
        "towers": _towers(merge, gguf) or None,
        "chat_template": merge.chat_template,
        "gguf_files": [_gguf_file(file) for file in gguf.files] or None,
        "mmproj": _mmproj(gguf.projector),
        "gguf_build": _gguf_build(gguf),
        "versions": model_tools(manifest),
        "history": history_facts(history(manifest, folder)) if folder else None,
    }
    return _without_none(facts)


def _towers(merge: MergeFacts, gguf: GGUFFacts) -> list[str]:
    """The towers the released checkpoint keeps, as its merged config says; a manifest
    whose merge predates that fact shows them through the GGUF stage's projector."""
    return merge.towers or (gguf.projector.towers if gguf.projector else [])


def _mmproj(projector: ProjectorFacts | None) -> dict[str, Any] | None:
    """The towers' projector file, which llama.cpp loads beside each text GGUF."""
    if projector is None:
        return None
    return projector.model_dump(mode="json", include={"name", "towers", "bytes", "sha256"})


def _gguf_build(gguf: GGUFFacts) -> dict[str, Any] | None:
    """The llama.cpp that wrote (its converter, its quantizer) and verified (its runtime)
    the files, the writers each file names, and the tokens per position the files were
    compared on (the merged model's reference keeps its top k)."""
    if not gguf.files:
        return None
    build = gguf.llama_cpp
    writers = [file.exporter for file in gguf.files if file.exporter]
    return {
        "llama_cpp": build.label if build else None,
        "commit": build.commit if build else None,
        "writers": list(dict.fromkeys(writers)),
        "reference_top_k": gguf.reference.top_k if gguf.reference else None,
    }


def _at(repo_id: str | None, commit: str | None) -> str | None:
    return f"{repo_id}@{commit}" if repo_id and commit else None


def _gguf_file(file: GGUFFileFacts) -> dict[str, Any]:
    """One GGUF file's row: its numbers as llama.cpp measured them (what GGUF users run)."""
    return {
        "name": file.name,
        "type": file.type,
        "bytes": file.bytes,
        "sha256": file.sha256,
        "top1_agreement": file.top1_agreement.get("llama_cpp"),
        "max_abs_diff": file.max_abs_diff.get("llama_cpp"),
    }


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {k: _without_none(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    return value


def has_gguf_files(manifest: Manifest) -> bool:
    return bool((facts := GGUFFacts.of(manifest)) and facts.files)


def repo_ids(spec: ReleaseSpec) -> dict[Kind, str]:
    """The repo of each card; a placeholder owner while push.repo_id is not set."""
    merged = spec.push.repo_id or f"{PLACEHOLDER_OWNER}/{spec.name}"
    return {
        "merged": merged,
        "gguf": spec.push.gguf_repo_id or f"{merged}-GGUF",
        "adapter": spec.push.adapter_repo_id or f"{merged}-LoRA",
    }


def _pipeline_tag(spec: ReleaseSpec, manifest: Manifest | None) -> str:
    """The spec's tag; left at its default, the one for a model with a vision tower
    when the released checkpoint keeps one."""
    merge = MergeFacts.of(manifest) or MergeFacts()
    gguf = GGUFFacts.of(manifest) or GGUFFacts()
    chosen = "pipeline_tag" in spec.card.model_fields_set
    if not chosen and "vision" in _towers(merge, gguf):
        return WITH_TOWERS
    return spec.card.pipeline_tag


def card_metadata(spec: ReleaseSpec, kind: Kind, manifest: Manifest | None = None) -> CardMetadata:
    card = spec.card
    base = repo_ids(spec)["merged"] if kind == "gguf" else spec.base.repo_id
    data: dict[str, Any] = {
        "license": card.license,
        "license_name": card.license_name,
        "license_link": card.license_link or LICENSE_LINKS.get(card.license),
        "language": card.language or None,
        "tags": list(dict.fromkeys([*card.tags, "model-release"])),
        "datasets": card.datasets or None,
        "pipeline_tag": _pipeline_tag(spec, manifest),
        "library_name": {"merged": "transformers", "adapter": "peft", "gguf": None}[kind],
        "base_model": base,
        "base_model_relation": _RELATION[kind] if base else None,
    }
    return CardMetadata.model_validate({k: v for k, v in data.items() if v is not None})


def card_context(spec: ReleaseSpec, manifest: Manifest, kind: Kind) -> CardContext:
    ids = repo_ids(spec)
    evaluated = spec.workspace / EvaluateFacts.stage
    produced = produced_results(evaluated / HARNESS_DIR)
    records = load_results([*spec.eval.results, *produced]) if kind != "gguf" else []
    baseline = load_results(produced_results(evaluated / BASE_HARNESS_DIR)) if records else []
    return CardContext(
        metadata=card_metadata(spec, kind, manifest),
        repo_id=ids["adapter"] if kind == "adapter" else ids["merged"],
        model_name=spec.name,
        gguf_repo_id=ids["gguf"] if has_gguf_files(manifest) else None,
        summary=spec.card.summary,
        intended_uses=spec.card.intended_uses,
        limitations=spec.card.limitations,
        training_data=spec.card.training_data,
        facts=card_facts(manifest, spec.workspace),
        records=records,
        baseline=baseline,
        citations=[spec.card.bibtex] if spec.card.bibtex.strip() else [],
    )
