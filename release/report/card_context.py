"""From a release (spec + manifest) to what the cards say: no number is typed by hand.

The manifest's facts are measured by the stages; this module only selects and renames
them into the plain facts dict ``cards.render`` understands, and builds the card
metadata from the spec. Light on purpose (no torch): ``card build`` runs it.
"""

from __future__ import annotations

from typing import Any, Literal

from cards.evals import load_results
from cards.render import CardContext
from cards.schema import CardMetadata
from release.core.manifest import Manifest
from release.spec.schema import ReleaseSpec

PLACEHOLDER_OWNER = "your-name"
"""Owner shown in usage snippets while push.repo_id is not set yet."""

Kind = Literal["merged", "adapter", "gguf"]
_RELATION = {"merged": "finetune", "adapter": "adapter", "gguf": "quantized"}


def card_facts(manifest: Manifest) -> dict[str, Any]:
    adapter = manifest.facts("adapter")
    merge = manifest.facts("merge")
    facts: dict[str, Any] = {
        "base_parameters": adapter.get("base_parameters"),
        "trainable_parameters": adapter.get("trainable_parameters"),
        "adapter_bytes": adapter.get("adapter_bytes"),
        "base_revision": adapter.get("base_commit") or adapter.get("base_revision"),
        "adapter_revision": _at(adapter.get("adapter_repo_id"), adapter.get("adapter_commit")),
        "architecture": merge.get("architecture") or adapter.get("base_model_class"),
        "dtype": merge.get("dtype") or adapter.get("base_dtype"),
        "merged_bytes": merge.get("bytes_written"),
        "context_length": merge.get("context_length"),
        "vocab_size": merge.get("vocab_size"),
        "peft_type": adapter.get("peft_type"),
        "lora": {
            "r": adapter.get("r"),
            "alpha": adapter.get("lora_alpha"),
            "dropout": adapter.get("lora_dropout"),
            "target_modules": adapter.get("target_modules"),
            "use_rslora": adapter.get("use_rslora"),
            "use_dora": adapter.get("use_dora"),
        },
        "sanity": {
            key: manifest.facts("evaluate").get(key)
            for key in ("equivalence", "perplexity", "smoke", "gate", "device")
        },
        "gguf_files": [_gguf_file(f) for f in manifest.facts("gguf").get("files", [])] or None,
        "versions": _versions(manifest),
    }
    return _without_none(facts)


def _at(repo_id: str | None, commit: str | None) -> str | None:
    return f"{repo_id}@{commit}" if repo_id and commit else None


def _gguf_file(file: dict[str, Any]) -> dict[str, Any]:
    """One GGUF file's row: its numbers as llama.cpp measured them (what GGUF users run)."""

    def by_llama_cpp(value: Any) -> Any:
        return value.get("llama_cpp") if isinstance(value, dict) else value

    keys = ("name", "type", "bytes", "sha256")
    return {key: file.get(key) for key in keys} | {
        "top1_agreement": by_llama_cpp(file.get("top1_agreement")),
        "max_abs_diff": by_llama_cpp(file.get("max_abs_diff")),
    }


def _versions(manifest: Manifest) -> dict[str, str]:
    """Tools of the stages that made the model (not of the card or push themselves, so the
    same manifest always renders the same card)."""
    tools: dict[str, str] = {}
    for name, record in manifest.stages.items():
        if name not in ("card", "push"):
            tools |= record.tools
    return tools


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        kept = {k: _without_none(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    return value


def repo_ids(spec: ReleaseSpec) -> dict[Kind, str]:
    """The repo of each card; a placeholder owner while push.repo_id is not set."""
    merged = spec.push.repo_id or f"{PLACEHOLDER_OWNER}/{spec.name}"
    return {
        "merged": merged,
        "gguf": spec.push.gguf_repo_id or f"{merged}-GGUF",
        "adapter": spec.push.adapter_repo_id or f"{merged}-LoRA",
    }


def card_metadata(spec: ReleaseSpec, kind: Kind) -> CardMetadata:
    card = spec.card
    base = repo_ids(spec)["merged"] if kind == "gguf" else spec.base.repo_id
    data: dict[str, Any] = {
        "license": card.license,
        "license_name": card.license_name,
        "license_link": card.license_link,
        "language": card.language or None,
        "tags": list(dict.fromkeys([*card.tags, "model-release"])),
        "datasets": card.datasets or None,
        "pipeline_tag": card.pipeline_tag,
        "library_name": {"merged": "transformers", "adapter": "peft", "gguf": None}[kind],
        "base_model": base,
        "base_model_relation": _RELATION[kind] if base else None,
    }
    return CardMetadata.model_validate({k: v for k, v in data.items() if v is not None})


def card_context(spec: ReleaseSpec, manifest: Manifest, kind: Kind) -> CardContext:
    ids = repo_ids(spec)
    records = load_results(spec.eval.results) if kind != "gguf" else []
    return CardContext(
        metadata=card_metadata(spec, kind),
        repo_id=ids["adapter"] if kind == "adapter" else ids["merged"],
        model_name=spec.name,
        kind="adapter" if kind == "adapter" else "merged",
        gguf_repo_id=ids["gguf"] if manifest.facts("gguf").get("files") else None,
        summary=spec.card.summary,
        intended_uses=spec.card.intended_uses,
        limitations=spec.card.limitations,
        training_data=spec.card.training_data,
        facts=card_facts(manifest),
        records=records,
        citations=[spec.card.bibtex] if spec.card.bibtex.strip() else [],
    )
