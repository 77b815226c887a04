"""The preflight's estimate of the GGUF stage's peak against the peak of a real run: the
stage's process and its children (llama.cpp's, the reference's), sampled together by
bench/gguf_peak.py, PSS (a file mapped twice counted once), less the stage's process
before the work (what the preflight sees as used already)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.parametrize("reference", ["evaluate", "here"])
def test_the_gguf_estimate_is_within_15_percent_of_the_peak(smollm2_base_dir, reference):
    """SmolLM2-135M, the demo's types; ``evaluate``: the reference kept by the evaluate
    stage; ``here``: computed by the stage itself (the eval off)."""
    command = [sys.executable, "-m", "bench.gguf_peak", "--model", str(smollm2_base_dir)]
    command += ["--types", "f16,q8_0,q4_k_m", "--reference", reference, "--json"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    print(reference, {key: round(value / 2**20) for key, value in found.items() if key != "wall_s"})
    # within 15% either way, as the scale issue asks. The stage's own reference load was
    # 18-22% over while the exporter's buffer counted the whole embedding in float32;
    # with large matrices written by rows it reads 1% under to 11% over (three runs: the
    # PSS of files other processes map too moves by as much)
    assert found["estimate"] == pytest.approx(found["grown_pss"], rel=0.15), found


def test_lm_eval_s_child_is_counted_where_the_files_run_the_tasks(tiny_llama_dir):
    """eval.tasks.gguf: the peak holds lm-eval's child on the largest file named, with a
    2048-token context's KV cache and logits (the model's own context where shorter); the
    refusal's line names it, and how to need less."""
    from release.gguf.needs import gguf_file_bytes, gguf_needs
    from release.gguf.peak import BENCHMARK_CHILD

    config = json.loads((tiny_llama_dir / "config.json").read_text())
    types = ["f16", "q8_0"]
    plain = gguf_needs(tiny_llama_dir, types, reference_here=False)
    tasks = gguf_needs(tiny_llama_dir, types, reference_here=False, benchmarked=types)
    context = min(2048, config["max_position_embeddings"])
    kv_width = (
        2 * config["num_key_value_heads"] * config["hidden_size"] // config["num_attention_heads"]
    )
    kv = config["num_hidden_layers"] * context * kv_width * 2
    logits = (context + 512) * config["vocab_size"] * 4
    f16 = gguf_file_bytes(tiny_llama_dir, ["f16"])["f16"]
    assert tasks.memory_bytes == max(plain.memory_bytes, BENCHMARK_CHILD + f16 + kv + logits)
    assert tasks.memory_bytes > plain.memory_bytes
    assert tasks.what.endswith(", then lm-eval on f16, q8_0"), tasks.what
    assert tasks.hint == "or choose fewer gguf.types or eval.tasks.gguf"
