"""``general.*``: who made the file, from what, under which license.

The values come from the release (spec and measured facts), so the GGUF header says the
same as the model card. llama.cpp and the Hub's GGUF viewer read these keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gguf

QUANTIZED_BY = "model-release"


@dataclass(frozen=True)
class ReleaseMetadata:
    name: str
    version: str
    license: str | None = None
    base_model: str | None = None
    """Hub repo id of the base model (``general.base_model.0.*``)."""
    base_commit: str | None = None
    """The base's commit the release was made from, when it was downloaded."""
    adapter_repo_id: str | None = None
    adapter_commit: str | None = None
    repo_id: str | None = None
    """Where the release is published, if it is."""
    tags: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)


def write_metadata(writer: gguf.GGUFWriter, meta: ReleaseMetadata) -> None:
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(meta.name)
    writer.add_version(meta.version)
    writer.add_quantized_by(QUANTIZED_BY)
    if meta.license:
        writer.add_license(meta.license)
    if meta.repo_id:
        writer.add_repo_url(hub_url(meta.repo_id))
    if meta.base_model:
        organization, _, name = meta.base_model.rpartition("/")
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, name)
        if organization:
            writer.add_base_model_organization(0, organization)
        writer.add_base_model_repo_url(0, hub_url(meta.base_model))
    for key, value in pinned_sources(meta).items():
        writer.add_string(key, value)
    if meta.datasets:
        writer.add_dataset_count(len(meta.datasets))
        for index, dataset in enumerate(meta.datasets):
            writer.add_dataset_name(index, dataset)
            writer.add_dataset_repo_url(index, hub_url(dataset, kind="datasets/"))
    if meta.tags:
        writer.add_tags(meta.tags)
    if meta.languages:
        writer.add_languages(meta.languages)


def pinned_sources(meta: ReleaseMetadata) -> dict[str, str]:
    """The Hub commits the release was made from, under our own keys: GGUF's
    ``general.base_model.*`` has no field for a commit, and none for an adapter."""
    keys = {
        "model_release.base.repo_id": meta.base_model if meta.base_commit else None,
        "model_release.base.commit": meta.base_commit,
        "model_release.adapter.repo_id": meta.adapter_repo_id,
        "model_release.adapter.commit": meta.adapter_commit,
    }
    return {key: value for key, value in keys.items() if value}


def hub_url(repo_id: str, kind: str = "") -> str:
    return f"https://huggingface.co/{kind}{repo_id}"
