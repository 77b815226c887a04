"""Architectures we do not build in: llama.cpp's own converter, of the runtime's commit.

``convert_hf_to_gguf.py`` comes from the sdist of the installed llama-cpp-python
(``release.gguf.pinned``), so the converter that writes a file and the runtime that
verifies it are the same llama.cpp. ``gguf.llama_cpp_dir`` (release.yaml) or
``$LLAMA_CPP_DIR`` may name a llama.cpp checkout instead. It runs as a subprocess with
an argument list, its own ``gguf-py`` first on PYTHONPATH (never ours), and gets our
``general.*`` values through its ``--metadata`` override file; the keys it cannot take
that way (the license, the release's repo and datasets, our ``model_release.*`` pins)
are added to its file afterwards (``release_keys``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from release.gguf.facts import LlamaCppFacts
from release.gguf.metadata import QUANTIZED_BY, ReleaseMetadata, hub_url
from release.gguf.pinned import SCRIPT, PinnedConverterError, pinned_converter
from release.gguf.release_keys import add_release_keys

ENV_VAR = "LLAMA_CPP_DIR"
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
"""The --outtype values the converter writes itself."""


class ConverterFailed(RuntimeError):
    """convert_hf_to_gguf.py exited with an error."""


class ConverterMissing(RuntimeError):
    """No converter: not in the spec's folder, and the pinned one cannot be had."""


@dataclass(frozen=True)
class Converter:
    script: Path
    build: LlamaCppFacts
    """Which llama.cpp it is: the pinned build, or the checkout's folder and commit."""


def find_converter(llama_cpp_dir: Path | None) -> Converter:
    """The converter in the spec's folder or $LLAMA_CPP_DIR, else the pinned one."""
    for root in (llama_cpp_dir, os.environ.get(ENV_VAR)):
        if root and (Path(root) / SCRIPT).is_file():
            checkout = LlamaCppFacts(label=f"llama.cpp checkout {root}", commit=_commit(root))
            return Converter(Path(root) / SCRIPT, checkout)
    try:
        pinned = pinned_converter()
    except PinnedConverterError as exc:
        raise ConverterMissing(str(exc)) from None
    return Converter(pinned.script, LlamaCppFacts.model_validate(pinned.build.to_facts()))


def _commit(root: str | Path) -> str | None:
    """The commit a llama.cpp checkout is at, or None (not a git checkout, no git)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) == 40 else None


def convert_with_llama_cpp(
    script: Path,
    model_dir: Path,
    target: Path,
    outtype: str,
    meta: ReleaseMetadata,
    *,
    mmproj: bool = False,
) -> None:
    """``model_dir`` to ``target``: the text model, or with ``mmproj`` its towers; with
    the release's keys the converter does not write."""
    with converter_command(script, model_dir, target, outtype, meta, mmproj) as (command, env):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
        raise ConverterFailed(f"{SCRIPT} failed (exit {done.returncode}): {lines[-1]}")
    add_release_keys(target, meta)


@contextmanager
def converter_command(
    script: Path, model_dir: Path, target: Path, outtype: str, meta: ReleaseMetadata, mmproj: bool
) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The converter's command line and environment for one file, and its metadata
    override file beside ``target`` while the block runs."""
    root = script.parent
    override = target.with_name(f".{target.name}.metadata.json")
    override.write_text(json.dumps(_override(meta)), encoding="utf-8")
    paths = [str(root / "gguf-py"), str(root), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    command = [
        sys.executable,
        str(script),
        str(model_dir),
        "--outtype",
        outtype,
        "--outfile",
        str(target),
        "--metadata",
        str(override),
        *(["--mmproj"] if mmproj else []),
    ]
    try:
        yield command, env
    finally:
        override.unlink(missing_ok=True)


def _override(meta: ReleaseMetadata) -> dict:
    """Our ``general.*`` values in the converter's override format."""
    data: dict = {
        "general.name": meta.name,
        "general.version": meta.version,
        "general.quantized_by": QUANTIZED_BY,
    }
    if meta.license:
        data["general.license"] = meta.license
    if meta.tags:
        data["general.tags"] = meta.tags
    if meta.languages:
        data["general.languages"] = meta.languages
    if meta.base_model:
        organization, _, name = meta.base_model.rpartition("/")
        data["general.base_models"] = [
            {"name": name, "organization": organization, "repo_url": hub_url(meta.base_model)}
        ]
    return data
