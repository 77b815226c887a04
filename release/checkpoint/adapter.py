"""Where the adapter's files are: ``adapter.path`` as it is, or ``adapter.repo_id``
downloaded from the Hub at ``adapter.revision`` (``release.checkpoint.snapshot``).

Only what intake reads is fetched: adapter_config.json, the safetensors weights, and
the adapter's tokenizer files and chat template. The pickle ``adapter_model.bin`` is
fetched only when ``adapter.allow_pickle`` accepts one.
"""

from __future__ import annotations

from pathlib import Path

from release.checkpoint.snapshot import Snapshot, download
from release.spec.schema import AdapterSpec

ALLOW_PATTERNS = [
    "adapter_config.json",
    "adapter_model.safetensors",
    "*.json",
    "*.jinja",
    "tokenizer*",
    "*.model",
    "*.txt",
]
PICKLE_PATTERN = "adapter_model.bin"


def adapter_label(adapter: AdapterSpec) -> str:
    """How an adapter is named in messages: repo_id[@revision], else its folder."""
    if adapter.repo_id:
        return f"{adapter.repo_id}@{adapter.revision}" if adapter.revision else adapter.repo_id
    return str(adapter.path)


def adapter_snapshot(adapter: AdapterSpec) -> Snapshot | None:
    """The adapter as downloaded from the Hub (None when ``adapter.path`` is given)."""
    if adapter.repo_id is None:
        return None
    patterns = ALLOW_PATTERNS + ([PICKLE_PATTERN] if adapter.allow_pickle else [])
    return download(adapter.repo_id, adapter.revision, patterns, field="adapter")


def adapter_folder(adapter: AdapterSpec, snapshot: Snapshot | None) -> Path:
    """The adapter's local folder: its snapshot's, or ``adapter.path``."""
    if snapshot is not None:
        return snapshot.folder
    assert adapter.path is not None  # the spec requires path or repo_id
    return adapter.path
