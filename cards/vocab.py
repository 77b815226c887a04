"""The Hub's closed vocabularies, read from the data files shipped in cards/data/.

Each file names its source and the date it was read; refresh them from there. They
are plain text (one id a line, ``#`` comments) so a diff shows what the Hub added.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def _ids(name: str) -> frozenset[str]:
    text = resources.files("cards").joinpath("data", name).read_text(encoding="utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def licenses() -> frozenset[str]:
    """License ids accepted in ``license:`` (docs/hub/repositories-licenses.md)."""
    return _ids("licenses.txt")


def tasks() -> frozenset[str]:
    """Pipeline tags accepted in ``pipeline_tag:`` (huggingface.js PIPELINE_DATA)."""
    return _ids("tasks.txt")


def languages() -> frozenset[str]:
    """ISO 639-1 / 639-2/B / 639-3 codes and the Hub's special values."""
    return _ids("languages.txt")


def dataset_builders() -> frozenset[str]:
    """Builder names of 🤗 datasets (``json``, ``csv``...): local data, never a Hub id."""
    return _ids("dataset_builders.txt")


def canonical_datasets() -> frozenset[str]:
    """Hub dataset ids without an owner that the Hub still resolves."""
    return _ids("canonical_datasets.txt")
