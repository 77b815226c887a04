"""Fixtures for the GGUF tests: the pinned llama.cpp converter (the sdist of the installed
llama-cpp-python, unpacked once into the test cache), and
a tiny Llama whose predictions are confident. Registered with ``pytest_plugins``."""

from __future__ import annotations

from pathlib import Path

import pytest

from release.gguf.pinned import PACKAGE, pinned_converter
from tests.conftest import TEST_CACHE
from tests.support.cache_lock import building
from tests.support.gguf_helpers import make_confident


@pytest.fixture(scope="session")
def converter_dir() -> Path:
    """llama.cpp's convert_hf_to_gguf.py with its own gguf-py, isolated from ours, of
    the same llama.cpp commit as the runtime."""
    with building(TEST_CACHE / "llama.cpp" / f"{PACKAGE}-converter"):
        return pinned_converter(TEST_CACHE).script.parent


@pytest.fixture(scope="session")
def confident_llama_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny Llama with its embeddings scaled up and copied into the head, so it
    predicts its current token with a wide margin. A random model's logits are nearly
    tied, and top-1 agreement on them measures noise, not the export."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    model = make_confident(LlamaForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.bfloat16))
    path = tmp_path_factory.mktemp("confident-llama")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_llama_dir).save_pretrained(path)
    return path
