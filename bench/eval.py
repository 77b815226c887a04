"""Benchmark: the sanity eval (one model resident, as the stage runs it) vs the naive way
(PEFT base + adapter and the merged model both loaded, float32).

Generates a random Llama-shaped bf16 model (about 1 GB at the defaults) with the SmolLM2
tokenizer and a rank-16 LoRA on every linear layer, merges it with the pipeline's own
adapter and merge stages, then runs each contender in its own subprocess (so each peak
RSS is its own) and prints wall time, peak RSS and the ratios ours / naive.

    python -m bench.eval [--workdir DIR] [--hidden 2048 --layers 8] [--dtype float32]

Without --dtype, ours runs in float32 and in bfloat16, beside one naive run.

Both contenders do the same work: probe logits of base + adapter, of the base and of the
merged model; perplexity of the base and the merged model on the held-out text (base +
adapter's pass proves nothing the logits do not); one chat answer of 8 tokens
(a random model cannot chat, so the smoke test's verdict is not asked for). "ours" is
``release.evaluate.checks.model_checks`` in the dtype given (the stage's choice on the
CPU is float32; bfloat16 is its fallback when float32 does not fit).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELF = [sys.executable, "-m", __spec__.name]
"""This module again, as the child process it runs a contender in."""

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PROMPT = "Hi"


def generate(workdir: Path, hidden: int, layers: int, rank: int) -> None:
    """A random bf16 Llama with the SmolLM2 tokenizer, a random LoRA, and our merge."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from release.demo.smollm2 import load_tokenizer

    tokenizer = load_tokenizer()
    base, adapter = workdir / "base", workdir / "adapter"
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 11 // 4,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 128,
        num_key_value_heads=max(hidden // 512, 1),
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(TARGETS))
    peft_model = get_peft_model(model, lora)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.01)
    peft_model.save_pretrained(adapter)
    del model, peft_model
    run_stages(base, adapter, workdir / "build")


def run_stages(base: Path, adapter: Path, workspace: Path) -> None:
    from release.runner import run_release
    from release.spec.schema import ReleaseSpec

    spec = ReleaseSpec(
        name="bench",
        version="1.0",
        base={"path": str(base)},
        adapter={"path": str(adapter)},
        workspace=workspace,
        eval={"enabled": False},
    )
    for _ in run_release(spec, only=["adapter", "merge"]):
        pass


def run_ours(workdir: Path, dtype: str) -> None:
    from release.core.errors import WorkError
    from release.evaluate.checks import model_checks
    from release.evaluate.loading import LoadPlan
    from release.evaluate.settings import EvaluateSettings
    from release.spec.schema import ReleaseSpec
    from tests.support.reporters import SilentReporter

    base, build = workdir / "base", workdir / "build"
    spec = ReleaseSpec(
        name="bench",
        version="1.0",
        base={"path": str(base)},
        adapter={"path": str(workdir / "adapter")},
        eval={"prompts": [PROMPT], "max_new_tokens": 8},
    )
    plan = LoadPlan(dtype, 0)
    try:
        checks = model_checks(
            EvaluateSettings.of(spec),
            base,
            build / "adapter",
            build / "merge",
            plan,
            SilentReporter(),
            base_fingerprint=None,  # the base's passes run, as a first release's do
        )
        for _ in checks:
            pass
    except WorkError as failed:  # a random model's chat answer, or its perplexity
        print(f"ours: {failed}", file=sys.stderr)


def run_naive(workdir: Path) -> None:
    """The eval as it was: both models resident in float32."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from release.core.relay import finish
    from release.evaluate.sanity import (
        PROBE_PROMPTS,
        chat_smoke,
        merge_equivalence,
        next_token_logits,
        perplexity,
        probe_reference,
    )
    from release.reference.heldout import heldout_text
    from release.reference.probe import PROBE
    from release.reference.record import heldout_sequences

    base, build = workdir / "base", workdir / "build"
    tokenizer = AutoTokenizer.from_pretrained(build / "merge")
    # the shipped sample, as the bench's spec names none
    ids = heldout_sequences(tokenizer, heldout_text(None), PROBE)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(model, build / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(build / "merge", dtype=torch.float32).eval()
    with with_adapter.disable_adapter():
        bare = [t.cpu() for t in next_token_logits(with_adapter, tokenizer, PROBE_PROMPTS)]
        for _ in perplexity(with_adapter, ids):
            pass
    reference = finish(
        probe_reference(with_adapter, tokenizer, PROBE_PROMPTS, torch.bfloat16, bare)
    )
    finish(merge_equivalence(merged, tokenizer, reference))
    for _ in perplexity(merged, ids):
        pass
    for _ in chat_smoke(merged, tokenizer, PROMPT, max_new_tokens=8):
        pass


def estimated_mb(workdir: Path, dtype: str) -> float:
    """The preflight's estimate of the checks' peak (``release.evaluate.needs``)."""
    from release.evaluate.loading import LoadPlan
    from release.evaluate.needs import evaluate_needs

    build = workdir / "build"
    plan = LoadPlan(dtype, 0)
    needs = evaluate_needs(workdir / "base", build / "merge", build / "adapter", plan)
    return needs.memory_bytes / 2**20


def measure(contender: str, workdir: Path, dtype: str) -> dict[str, float]:
    """Run one contender in a fresh interpreter: wall seconds and its own peak RSS."""
    command = [*SELF, "--contender", contender, "--dtype", dtype]
    started = time.perf_counter()
    done = subprocess.run([*command, str(workdir)], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    return {"wall_s": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"])
    parser.add_argument("--contender", choices=["generate", "ours", "naive"])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()

    if args.contender == "generate":
        generate(args.paths[0], args.hidden, args.layers, args.rank)
        return
    if args.contender:  # child: run one contender, report its peak RSS
        import peft  # noqa: F401  (imported before the baseline, as in a stage's process)
        import psutil
        import transformers  # noqa: F401

        before = psutil.Process().memory_info().rss
        if args.contender == "ours":
            run_ours(args.paths[0], args.dtype)
        else:
            run_naive(args.paths[0])
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"peak_rss_mb": peak / 2**20, "before_mb": before / 2**20}))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="eval-bench-"))
    dtypes = [args.dtype] if args.dtype else ["float32", "bfloat16"]
    try:
        if not (workdir / "build" / "merge").is_dir():
            # a child, as ru_maxrss survives fork and exec: the parent must never hold a model
            sizes = [f"--{name}={getattr(args, name)}" for name in ("hidden", "layers", "rank")]
            subprocess.run(
                [*SELF, "--contender", "generate", *sizes, str(workdir)],
                check=True,
            )
        size = sum(p.stat().st_size for p in (workdir / "base").glob("*.safetensors"))
        print(f"base: Llama-shaped, {size / 1e9:.2f} GB bf16; LoRA r={args.rank} on {TARGETS}")
        rows = {f"ours ({dtype})": measure("ours", workdir, dtype) for dtype in dtypes}
        naive = rows["naive (float32)"] = measure("naive", workdir, "float32")
        print(f"{'':18} {'wall s':>8} {'peak RSS MB':>12} {'wall/naive':>11} {'RSS/naive':>10}")
        for name, row in rows.items():
            ratios = row["wall_s"] / naive["wall_s"], row["peak_rss_mb"] / naive["peak_rss_mb"]
            print(
                f"{name:18} {row['wall_s']:8.1f} {row['peak_rss_mb']:12.0f} "
                f"{ratios[0]:11.2f} {ratios[1]:10.2f}"
            )
        print("goal: ours at most 0.5 of the naive way's peak RSS")
        for dtype in dtypes:
            ours = rows[f"ours ({dtype})"]
            grown = ours["peak_rss_mb"] - ours["before_mb"]
            estimate = estimated_mb(workdir, dtype)
            print(
                f"preflight estimate of ours ({dtype}): {estimate:.0f} MB against {grown:.0f} MB "
                f"measured (peak less the process before the checks): {estimate / grown - 1:+.1%}"
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
