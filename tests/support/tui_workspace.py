"""A release workspace with fixed facts, for the wizard's snapshot tests.

Snapshots must not change from run to run, so the manifest here holds facts recorded by
a real run of the demo release (SmolLM2-135M-Instruct with the 30-step LoRA), copied
once, and no output files (nothing to hash, nothing that varies). Each record's key is
the one a run would compute now (``record_current_keys``), so the steps read as done.
Paths are relative to the folder the tests run in.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from release.core.manifest import MANIFEST_NAME, Manifest, StageRecord
from release.runner import keyed_settings, stage_key
from release.spec.schema import ReleaseSpec, load_spec
from release.stages import default_stages

ADAPTER_FACTS = {
    "peft_type": "LORA",
    "r": 8,
    "lora_alpha": 16.0,
    "lora_dropout": 0.0,
    "use_rslora": False,
    "use_dora": False,
    "target_modules": ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
    "modules_to_save": [],
    "rank_pattern": {},
    "alpha_pattern": {},
    "edited_parameters": 210,
    "trainable_parameters": 2442240,
    "adapter_bytes": 9823216,
    "adapter_format": "safetensors",
    "adapter_dtypes": ["float32"],
    "declared_base": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "base_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "base_repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "base_revision": None,
    "base_parameters": 134515008,
    "base_dtype": "bfloat16",
    "base_tensors": 272,
    "base_fingerprint": "d7d8353341199db46096db1528e1efa16510db376cee40d8496494b20a5fb71d",
    "base_model_class": "LlamaForCausalLM",
}
MERGE_FACTS = {
    "merged_parameters": 134515008,
    "dtype": "bfloat16",
    "bytes_written": 269030016,
    "shards": 1,
    "tensors": 272,
    "tensors_merged": 210,
    "tokenizer_from": "base",
}
EVAL_FACTS = {
    "results": [],
    "gate": {
        "passed": True,
        "compared": [],
        "failures": [],
        "warnings": [],
        "flagged": [],
        "average_previous": None,
        "average_current": None,
    },
    "device": "cpu",
    "equivalence": {
        "prompts": 8,
        "positions": 49,
        "max_abs_diff": 1.031811,
        "mean_abs_diff": 0.098392,
        "adapter_effect": 1.063588,
        "top1_agreement": 0.979592,
        "relative_error": 0.09251,
        "min_top1_agreement": 0.9,
        "max_relative_error": 0.25,
    },
    "perplexity": {
        "text": "model-release heldout.txt (multilingual sample)",
        "tokens": 1051,
        "base": 38.103,
        "merged": 38.4019,
        "ratio": 1.0078,
        "max_ratio": 1.5,
    },
    "smoke": [
        {
            "prompt": "Convert 25 degrees Celsius to Fahrenheit.",
            "output": "25 °C = 77.8 °F. (°F = °C × 9/5 + 32)",
            "stop": "eos",
            "new_tokens": 30,
            "repeated_ngram_ratio": 0.0,
            "leaked": [],
            "problems": [],
            "passed": True,
        },
        {
            "prompt": "What is the capital of Japan?",
            "output": "The capital of Japan is Tokyo.",
            "stop": "eos",
            "new_tokens": 8,
            "repeated_ngram_ratio": 0.0,
            "leaked": [],
            "problems": [],
            "passed": True,
        },
        {
            "prompt": "Write one sentence about the sea.",
            "output": "The sea is a vast and mysterious realm of water, teeming with "
            "life and a vast array of marine life.",
            "stop": "eos",
            "new_tokens": 23,
            "repeated_ngram_ratio": 0.0,
            "leaked": [],
            "problems": [],
            "passed": True,
        },
    ],
}
GGUF_FACTS = {
    "files": [
        {
            "name": "demo-F16.gguf",
            "type": "f16",
            "exporter": "model-release",
            "bytes": 271_105_344,
            "sha256": "0" * 64,
            "top1_agreement": {"transformers": 1.0, "llama_cpp": 0.995},
            "max_abs_diff": {"transformers": 0.03, "llama_cpp": 0.12},
            "min_top1_agreement": 0.99,
            "tokenizer_agreement": True,
            "smoke_output": "1 mile is 1.609 km.",
        },
        {
            "name": "demo-Q8_0.gguf",
            "type": "q8_0",
            "exporter": "model-release",
            "bytes": 144_810_432,
            "sha256": "1" * 64,
            "top1_agreement": {"transformers": 0.985, "llama_cpp": 0.97},
            "max_abs_diff": {"transformers": 0.4, "llama_cpp": 0.6},
            "min_top1_agreement": 0.95,
            "tokenizer_agreement": True,
            "smoke_output": "1 mile is 1.609 km.",
        },
    ]
}
MEASURED = {"merge": {"peak_rss_bytes": 465801216}}
FACTS = {"adapter": ADAPTER_FACTS, "merge": MERGE_FACTS, "evaluate": EVAL_FACTS, "gguf": GGUF_FACTS}


def snapshot_workspace(root: Path, done: tuple[str, ...]) -> Path:
    """release.yaml in ``root`` and a manifest in which the ``done`` stages finished."""
    (root / "adapter").mkdir(exist_ok=True)
    (root / "adapter" / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (root / "base").mkdir(exist_ok=True)
    (root / "base" / "config.json").write_text("{}")
    spec = {
        "name": "demo",
        "version": "0.1.0",
        "base": {"repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "path": "base"},
        "adapter": {"path": "adapter"},
        "gguf": {"types": ["f16", "q8_0"]},
        "card": {
            "summary": "SmolLM2-135M-Instruct with a LoRA that answers unit conversions.",
            "limitations": "A 135M model makes arithmetic mistakes: check every number.",
            "license": "apache-2.0",
            "language": ["en"],
            "tags": ["lora", "demo"],
        },
    }
    path = root / "release.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    manifest = Manifest(name="demo", version="0.1.0")
    for stage in done:
        manifest.stages[stage] = StageRecord(
            key=f"key-{stage}",
            finished_at="2026-01-01T00:00:00+00:00",
            seconds=1.0,
            facts=FACTS.get(stage, {}),
            measured=MEASURED.get(stage, {}),
        )
    (root / "build").mkdir(exist_ok=True)
    manifest.save(root / "build" / MANIFEST_NAME)
    record_current_keys(load_spec(path))
    return path


def record_current_keys(spec: ReleaseSpec) -> None:
    """Give each recorded stage the key, inputs and keyed settings a run of ``spec``
    would record now, as if it had just run: fixtures that write records by hand then read as
    done, not changed, and a later edit of the spec is named as a change of setting."""
    path = spec.workspace / MANIFEST_NAME
    manifest = Manifest.load(path)
    for stage in default_stages():
        if stage.name in manifest.stages:
            record = manifest.stages[stage.name]
            record.key, record.inputs = stage_key(stage, spec, manifest)
            record.settings = keyed_settings(stage, spec)
    manifest.save(path)
