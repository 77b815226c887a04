"""``general.*``: who made the file, from what, under which license.

The values come from the release (spec and measured facts), so the GGUF header says the
same as the model card. llama.cpp and the Hub's GGUF viewer read these keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import gguf
from gguf import GGUFValueType as V
from gguf import Keys

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


_SAMPLING = (
    (("sequence",), Keys.General.SAMPLING_SEQUENCE, V.STRING),
    (("top_k",), Keys.General.SAMPLING_TOP_K, V.INT32),
    (("top_p",), Keys.General.SAMPLING_TOP_P, V.FLOAT32),
    (("min_p",), Keys.General.SAMPLING_MIN_P, V.FLOAT32),
    (("xtc_probability",), Keys.General.SAMPLING_XTC_PROBABILITY, V.FLOAT32),
    (("xtc_threshold",), Keys.General.SAMPLING_XTC_THRESHOLD, V.FLOAT32),
    (("temperature",), Keys.General.SAMPLING_TEMP, V.FLOAT32),
    (("penalty_last_n",), Keys.General.SAMPLING_PENALTY_LAST_N, V.INT32),
    (("penalty_repeat", "repetition_penalty"), Keys.General.SAMPLING_PENALTY_REPEAT, V.FLOAT32),
    (("mirostat",), Keys.General.SAMPLING_MIROSTAT, V.INT32),
    (("mirostat_tau",), Keys.General.SAMPLING_MIROSTAT_TAU, V.FLOAT32),
    (("mirostat_eta",), Keys.General.SAMPLING_MIROSTAT_ETA, V.FLOAT32),
)
"""generation_config.json's sampling settings -> ``general.sampling.*`` (llama.cpp's
defaults when the user sets none), as gguf-py's Metadata reads them for the converter."""


def write_sampling(writer: gguf.GGUFWriter, model_dir: Path) -> None:
    """The model's own sampling defaults, from its generation_config.json."""
    path = model_dir / "generation_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (json.JSONDecodeError, OSError):
        return  # as the converter: an unreadable file is no sampling defaults
    for hf_keys, key, value_type in _SAMPLING:
        value = next((config[k] for k in hf_keys if config.get(k) is not None), None)
        if value is not None:
            writer.add_key_value(key, value, value_type)


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
