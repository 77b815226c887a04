"""Fixtures for pushing to the local Hub (tests/support/hub_server.py).

``hub``: a FakeHub on 127.0.0.1 for one test, with HF_ENDPOINT pointing at it and
HF_TOKEN set to a canary that must never appear in any output or file.
``built_release``: a workspace as the stages before the push leave it (merged tiny Llama,
a real GGUF, cards, an adapter, a manifest whose gate passed) and its spec.

The Hub client picks Xet over LFS when hf_xet is installed, and the fake server cannot
speak Xet; HF_HUB_DISABLE_XET=1 is the user-level switch to plain LFS, and
huggingface_hub reads it once, at import. So it is set here, when conftest imports this
module, before any test imports huggingface_hub.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ["HF_HUB_DISABLE_XET"] = "1"

from release.core.files import iter_files
from release.core.manifest import MANIFEST_NAME, Manifest, StageRecord, now_iso
from release.spec.schema import ReleaseSpec
from tests.support.hub_server import FakeHub

CANARY_TOKEN = "hf_CANARYdoNotLeakQ7xZ3kW9pR2m"
REPO_ID = "tester/tiny-chat"
GGUF_REPO_ID = "tester/tiny-chat-GGUF"
ADAPTER_REPO_ID = "tester/tiny-chat-lora"

MODEL_CARD = f"""---
license: apache-2.0
language:
- en
library_name: transformers
pipeline_tag: text-generation
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
base_model_relation: finetune
tags:
- model-release
---

# tiny-chat

A tiny Llama fine-tuned with LoRA and merged, released by model-release for tests.
Pushed to [{REPO_ID}](https://huggingface.co/{REPO_ID}).
"""

GGUF_CARD = f"""---
license: apache-2.0
library_name: gguf
pipeline_tag: text-generation
base_model: {REPO_ID}
base_model_relation: quantized
tags:
- gguf
---

# tiny-chat GGUF

GGUF files of [{REPO_ID}](https://huggingface.co/{REPO_ID}) for llama.cpp.
"""

ADAPTER_CARD = """---
license: apache-2.0
library_name: peft
pipeline_tag: text-generation
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
base_model_relation: adapter
---

# tiny-chat LoRA

The LoRA adapter of tiny-chat.
"""


@pytest.fixture
def hub(tmp_path_factory, monkeypatch) -> FakeHub:
    from huggingface_hub import constants

    assert constants.HF_HUB_DISABLE_XET, (
        "huggingface_hub was imported before tests/support/hub_fixtures.py set "
        "HF_HUB_DISABLE_XET=1:"
        " import tests.support.hub_fixtures from conftest.py's top"
    )
    with FakeHub(tmp_path_factory.mktemp("hub"), CANARY_TOKEN) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_TOKEN", CANARY_TOKEN)
        yield server


def upload_folder(
    hub: FakeHub, repo_id: str, folder: Path, *, private: bool = False, **extra: bytes
) -> str:
    """``folder`` (and ``extra`` files) as one commit of ``repo_id`` on the local Hub,
    pushed with the real client; returns the commit's sha."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub.url, token=hub.token)
    api.create_repo(repo_id, exist_ok=True, private=private)
    operations = [
        CommitOperationAdd(str(path.relative_to(folder)), path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ] + [CommitOperationAdd(name, data) for name, data in extra.items()]
    return api.create_commit(repo_id, operations, commit_message=f"upload {repo_id}").oid


@dataclass
class BuiltRelease:
    spec: ReleaseSpec
    workspace: Path

    @property
    def manifest_path(self) -> Path:
        return self.workspace / MANIFEST_NAME

    def manifest(self) -> Manifest:
        return Manifest.load(self.manifest_path)

    def with_push(self, **push) -> ReleaseSpec:
        return self.spec.model_copy(
            update={"push": self.spec.push.model_copy(update=push)}, deep=True
        )


def write_gguf(path: Path) -> None:
    """A small real GGUF (llama architecture, one f32 tensor), written by gguf-py."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_tensor("token_embd.weight", np.arange(256, dtype=np.float32).reshape(16, 16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_adapter(folder: Path) -> None:
    import json

    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.randn(
            8, 64, generator=generator
        ),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.randn(
            64, 8, generator=generator
        ),
    }
    save_file(tensors, folder / "adapter_model.safetensors")
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))


def build_release(root: Path, model_dir: Path, *, version: str = "1.0.0") -> BuiltRelease:
    """The workspace the stages before the push leave, with its manifest."""
    workspace = root / "build"
    shutil.copytree(model_dir, workspace / "merge")
    (workspace / "card").mkdir(parents=True)
    (workspace / "card" / "README.md").write_text(MODEL_CARD)
    (workspace / "card" / "adapter").mkdir()
    (workspace / "card" / "adapter" / "README.md").write_text(ADAPTER_CARD)
    (workspace / "card" / "gguf").mkdir()
    (workspace / "card" / "gguf" / "README.md").write_text(GGUF_CARD)
    (workspace / "gguf").mkdir()
    write_gguf(workspace / "gguf" / "tiny-chat-f32.gguf")
    write_adapter(workspace / "adapter")
    spec = ReleaseSpec.model_validate(
        {
            "name": "tiny-chat",
            "version": version,
            "base": {"repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct"},
            "adapter": {"path": str(root / "adapter-in")},
            "workspace": str(workspace),
            "push": {"repo_id": REPO_ID},
        }
    )
    manifest = Manifest(name=spec.name, version=spec.version)
    facts = {"evaluate": {"gate": {"passed": True}}}
    for stage in ("adapter", "merge", "evaluate", "gguf", "card"):
        folder = workspace / stage
        files = iter_files(folder) if folder.is_dir() else []
        manifest.stages[stage] = StageRecord(
            key=f"key-{stage}",
            finished_at=now_iso(),
            seconds=0.0,
            outputs=[manifest.record(path, relative_to=workspace) for path in files],
            facts=facts.get(stage, {}),
        )
    manifest.save(workspace / MANIFEST_NAME)
    return BuiltRelease(spec, workspace)


@pytest.fixture
def built_release(tmp_path, tiny_llama_dir) -> BuiltRelease:
    return build_release(tmp_path, tiny_llama_dir)
