"""Benchmark (headers only): the preflight's estimates at the users' sizes, as the README's
runner table.

For each published model shape in ``tests.support.sparse_models.SHAPES`` (Llama-3.2-1B
to a 40B Llama) it writes the checkpoint as the Hub holds it (bf16, 5 GB shards, real
safetensors headers, holes for data: no disk used) and a LoRA of r=16 on all seven
projections, and asks the stages' own estimates what a release needs:

- merge: ``merge_needs`` (the merged folder's bytes, the merge's peak RAM);
- evaluate: ``evaluate_needs`` on the CPU in float32 and in bf16, and ``choose_plan``'s
  plan with one GPU (its RAM: the weights go to the GPU);
- GGUF: ``gguf_needs`` for ``--types`` (default: the spec's, f16 and q8_0) with the
  evaluate stage's reference kept, and with the eval off (the stage computes it);
- the smallest GitHub-hosted runner (``release.preflight``'s sizes, less its
  ``RUNNER_MEMORY_OVERHEAD``) where every stage's preflight (``refusal``) passes, the
  disk filling as the release goes (the base in the Hub cache, the merged model, the
  GGUF files) and the eval in the dtype ``choose_plan`` picks for that RAM.

The tokenizer is SmolLM2's (Gemma's: a small Gemma 4 one), its vocabulary filled with
unused pieces to the model's rows, as a published one is: the GGUF files hold every
embedding row. Light on RAM (transformers builds each model on the meta device); about
a minute and a half of CPU.

    python -m bench.runner_needs [--types f16,q8_0] [--models NAME ...]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

from release.preflight import Needs

RANK = 16


@dataclass(frozen=True)
class Estimates:
    name: str
    parameters: int
    hub_cache: int
    merge: Needs
    eval_f32: Needs
    eval_bf16: Needs
    eval_gpu: Needs
    gguf: Needs
    gguf_eval_off: Needs
    runner: str

    @property
    def disk_in_all(self) -> int:
        return self.hub_cache + self.merge.output_bytes + self.gguf.output_bytes


def _gb(value: int) -> str:
    from release.core.units import human

    return human(value, "bytes")


@functools.cache
def _tokenizer(config_class: str):
    if config_class == "Gemma4TextConfig":
        from tests.support.gemma4_models import gemma4_tokenizer

        return gemma4_tokenizer()
    from release.demo.smollm2 import load_tokenizer

    return load_tokenizer()


def smallest_runner(model: Path, adapter: Path, hub_cache: int, merge: Needs, gguf: Needs) -> str:
    """The first GitHub-hosted runner on which no stage's preflight refuses the release
    (the merge's and the GGUF stage's ``merge`` and ``gguf`` needs; the eval's as
    ``choose_plan`` picks it for the runner's RAM)."""
    from release.evaluate.needs import choose_plan
    from release.preflight import (
        HOSTED_RUNNER,
        LARGER_RUNNERS,
        RUNNER_MEMORY_OVERHEAD,
        Resources,
        refusal,
    )

    for runner in (HOSTED_RUNNER, *LARGER_RUNNERS):
        memory = runner.memory_gb * 10**9 - RUNNER_MEMORY_OVERHEAD
        free = runner.disk_gb * 10**9 - hub_cache
        plan, evaluate = choose_plan(model, model, adapter, 0, memory)
        stages = [("merge", merge, free), ("evaluate", evaluate, free - merge.output_bytes)]
        stages += [("gguf", gguf, free - merge.output_bytes)]
        if free >= 0 and not any(
            refusal(stage, needs, Resources(model, disk, memory, "RAM"))
            for stage, needs, disk in stages
        ):
            dtype = "bf16" if plan.dtype == "bfloat16" else "f32"
            return f"{runner.name} ({runner.memory_gb} GB; eval {dtype})"
    return "none"


def estimate(name: str, folder: Path, types: list[str]) -> Estimates:
    from release.checkpoint.safetensors import checkpoint_files, parameter_counts
    from release.evaluate.loading import LoadPlan
    from release.evaluate.needs import choose_plan, evaluate_needs
    from release.gguf.needs import gguf_needs
    from release.merge.needs import merge_needs
    from release.spec.schema import MergeSpec
    from tests.support.sparse_models import SHAPES, write_sparse_lora, write_sparse_model

    shape = SHAPES[name]
    model, adapter = folder / "model", folder / "adapter"
    shapes = write_sparse_model(model, shape, _tokenizer(shape.config_class))
    write_sparse_lora(adapter, model, shapes, RANK)
    merge = MergeSpec()
    hub_cache = sum(path.stat().st_size for path in checkpoint_files(model))
    hub_cache += sum(p.stat().st_size for p in model.iterdir() if p.suffix != ".safetensors")
    merged = merge_needs(model, adapter, merge.dtype, merge.shard_size)
    gguf = gguf_needs(model, types, reference_here=False)
    return Estimates(
        name=name,
        parameters=parameter_counts(model)[0],
        hub_cache=hub_cache,
        merge=merged,
        eval_f32=evaluate_needs(model, model, adapter, LoadPlan("float32", 0)),
        eval_bf16=evaluate_needs(model, model, adapter, LoadPlan("bfloat16", 0)),
        eval_gpu=choose_plan(model, model, adapter, 1, 10**15)[1],
        gguf=gguf,
        gguf_eval_off=gguf_needs(model, types, reference_here=True),
        runner=smallest_runner(model, adapter, hub_cache, merged, gguf),
    )


def table(rows: list[Estimates]) -> str:
    lines = [
        "| model | parameters | Hub cache (base) | merge: disk / RAM "
        "| evaluate RAM: f32 / bf16 / one GPU | GGUF: disk / RAM (eval off) | disk in all "
        "| smallest runner |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [
            r.name,
            f"{r.parameters / 1e9:.2f}B",
            _gb(r.hub_cache),
            f"{_gb(r.merge.output_bytes)} / {_gb(r.merge.memory_bytes)}",
            f"{_gb(r.eval_f32.memory_bytes)} / {_gb(r.eval_bf16.memory_bytes)} / "
            f"{_gb(r.eval_gpu.memory_bytes)}",
            f"{_gb(r.gguf.output_bytes)} / {_gb(r.gguf.memory_bytes)} "
            f"({_gb(r.gguf_eval_off.memory_bytes)})",
            _gb(r.disk_in_all),
            r.runner,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from release.spec.schema import GGUFSpec
    from tests.support.sparse_models import SHAPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default=",".join(GGUFSpec().types), help="gguf.types")
    parser.add_argument("--models", nargs="*", choices=list(SHAPES), default=list(SHAPES))
    args = parser.parse_args()
    types = args.types.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="runner-needs-") as root:
        for index, name in enumerate(args.models):
            rows.append(estimate(name, Path(root) / str(index), types))
            print(f"{name}: done", flush=True)
    print(f"\ngguf.types: {', '.join(types)}; a LoRA of r={RANK} on all seven projections\n")
    print(table(rows))


if __name__ == "__main__":
    main()
