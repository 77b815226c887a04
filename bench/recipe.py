"""Benchmark: a three-input merge recipe, ours (streaming) vs mergekit 0.1.5's.

Generates a Llama-shaped bf16 base and two full fine-tunes of it (the base plus noise),
then merges the three with the same YAML (``ties``, float32 arithmetic, bf16 written)
in each tool, each contender in its own interpreter so that each peak RSS is its own,
and prints wall time, peak RSS, CPU time and the ratios ours / mergekit.

    python -m bench.recipe [--workdir DIR] [--hidden 1024 --layers 4]
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

RECIPE = """merge_method: ties
base_model: {base}
models:
  - {{model: {a}, parameters: {{weight: 1.0, density: 0.5}}}}
  - {{model: {b}, parameters: {{weight: 0.7, density: 0.5}}}}
dtype: float32
out_dtype: bfloat16
"""


def generate(workdir: Path, hidden: int, layers: int) -> None:
    """A random Llama base and two fine-tunes of it, written tensor by tensor."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from release.checkpoint.safetensors import OutTensor, ShardWriter, plan_shards

    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=hidden,
        intermediate_size=hidden * 11 // 4,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 128,
        num_key_value_heads=max(1, hidden // 512),
        tie_word_embeddings=False,
        dtype="bfloat16",
    )
    config.architectures = ["LlamaForCausalLM"]
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in LlamaForCausalLM(config).state_dict().items()}
    plan = [OutTensor(name, "BF16", shape) for name, shape in shapes.items()]
    for number, name in enumerate(["base", "a", "b"]):
        folder = workdir / name
        folder.mkdir(parents=True)
        config.save_pretrained(folder)
        generator = torch.Generator().manual_seed(0)
        noise = torch.Generator().manual_seed(number)
        with ShardWriter(folder, plan_shards(plan, 500 * 10**6)) as writer:
            for tensor, shape in shapes.items():
                weight = torch.randn(shape, generator=generator) * 0.02
                if number:
                    weight += torch.randn(shape, generator=noise) * 0.002
                writer.write(tensor, weight.bfloat16().view(torch.int16).numpy())


def run_ours(recipe_file: Path, out: Path) -> None:
    import yaml

    from release.merge.recipe_inputs import BaseIdentity, resolve_inputs
    from release.merge.recipe_stream import merge_recipe
    from release.spec.recipe import MergeRecipe

    recipe = MergeRecipe.model_validate(yaml.safe_load(recipe_file.read_text()))
    base = Path(recipe.steps[0].base_model or "")
    inputs = resolve_inputs(recipe, BaseIdentity(folder=base, path=base), base.parent)
    out.mkdir(parents=True)
    for _ in merge_recipe(recipe, inputs, out, dtype=recipe.dtype or "auto"):
        pass


def run_mergekit(recipe_file: Path, out: Path) -> None:
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    config = MergeConfiguration.model_validate(yaml.safe_load(recipe_file.read_text()))
    run_merge(config, str(out), MergeOptions(copy_tokenizer=False, quiet=True))


def measure(contender: str, recipe_file: Path, out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    command = [*SELF, "--contender", contender, str(recipe_file), str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    return {"wall_s": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--contender", choices=["generate", "ours", "mergekit"])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()

    if args.contender == "generate":
        generate(args.paths[0], args.hidden, args.layers)
        return
    if args.contender:  # child: one contender, then its peak RSS and CPU time
        recipe_file, out = args.paths
        (run_ours if args.contender == "ours" else run_mergekit)(recipe_file, out)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        print(json.dumps({"peak_rss_mb": usage.ru_maxrss * 1024 / 2**20, "cpu_s": cpu}))
        return

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recipe-bench-"))
    try:
        marker = workdir / "generated.json"
        sizes = [args.hidden, args.layers]
        if not (marker.is_file() and json.loads(marker.read_text()) == sizes):
            for folder in ("base", "a", "b"):
                shutil.rmtree(workdir / folder, ignore_errors=True)
            command = [*SELF, "--contender", "generate", str(workdir)]
            subprocess.run([*command, f"--hidden={args.hidden}", f"--layers={args.layers}"])
            marker.write_text(json.dumps(sizes))
        recipe_file = workdir / "recipe.yaml"
        recipe_file.write_text(RECIPE.format(**{n: workdir / n for n in ("base", "a", "b")}))
        size = sum(p.stat().st_size for p in (workdir / "base").glob("*.safetensors"))
        print(f"three inputs, Llama-shaped, {size / 1e9:.2f} GB bf16 each; ties, float32 math")
        ours = measure("ours", recipe_file, workdir / "ours")
        theirs = measure("mergekit", recipe_file, workdir / "mergekit")
        print(f"{'':9} {'wall s':>8} {'peak RSS MB':>12} {'cpu s':>7}")
        for name, row in (("ours", ours), ("mergekit", theirs)):
            print(f"{name:9} {row['wall_s']:8.1f} {row['peak_rss_mb']:12.0f} {row['cpu_s']:7.1f}")
        ratios = [ours[key] / theirs[key] for key in ("wall_s", "peak_rss_mb", "cpu_s")]
        print("ours / mergekit: wall {:.2f}, peak RSS {:.2f}, cpu {:.2f}".format(*ratios))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
