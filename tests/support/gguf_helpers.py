"""Helpers for the GGUF tests: a tiny model made confident, and the GGUF stage run on a
model folder as if the merge stage had written it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from release.core.manifest import Manifest
from release.spec.schema import ReleaseSpec
from release.stages.base import StageContext, StageOutput
from release.stages.gguf import GGUFStage


def make_confident(model):
    """Scale a causal LM's embeddings up and copy them into its head (in place)."""
    import torch

    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(20)
        model.lm_head.weight.copy_(model.model.embed_tokens.weight)
    return model


def llama_cpp_convert(converter_dir: Path, model_dir: Path, target: Path, outtype: str) -> Path:
    """``model_dir`` to ``target`` through llama.cpp's own convert_hf_to_gguf.py."""
    paths = [str(converter_dir / "gguf-py"), str(converter_dir)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    script = str(converter_dir / "convert_hf_to_gguf.py")
    command = [
        sys.executable,
        script,
        str(model_dir),
        "--outtype",
        outtype,
        "--outfile",
        str(target),
    ]
    subprocess.run(command, env=env, check=True, capture_output=True)
    return target


def gguf_context(model_dir: Path, workspace: Path, **gguf) -> StageContext:
    """A workspace whose merge stage output is ``model_dir``, ready for the GGUF stage."""
    workspace.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, workspace / "merge")
    spec = ReleaseSpec(
        name="demo",
        version="1.0.0",
        base={"repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        adapter={"path": workspace},
        workspace=workspace,
        gguf=gguf,
        card={"license": "apache-2.0", "language": ["en"], "tags": ["demo"]},
    )
    out = workspace / ".partial-gguf"
    out.mkdir()
    return StageContext(spec, Manifest(name="demo", version="1.0.0"), workspace, out, "gguf")


def run_gguf_stage(ctx: StageContext) -> tuple[StageOutput, list]:
    """Drive the stage's generator to the end; its output and the events it yielded."""
    events = []
    run = GGUFStage().run(ctx)
    while True:
        try:
            events.append(next(run))
        except StopIteration as stop:
            return stop.value, events
