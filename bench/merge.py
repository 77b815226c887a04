"""Benchmark: our streaming merge vs PEFT's load + merge_and_unload + save_pretrained.

Generates a Llama-shaped bf16 model of about 1 GB and a rank-16 LoRA on every linear
layer, then runs each contender in its own subprocess (so each peak RSS is its own) and
prints wall time, peak RSS, CPU time (user + sys of all threads: steadier than wall on
a machine others use) and the ratios ours / PEFT.

    python -m bench.merge [--workdir DIR] [--hidden 2048 --layers 8]

A --workdir is kept: run again on it, the generated model is reused when it was made
with the same sizes (else made again), and each contender writes into a fresh folder.

Ours is what a user runs: the adapter stage (intake checks, fingerprint), then the
merge stage, each through the runner (input and output hashing included), each in its
own process as the merge needs none of intake's memory. The merge row is the like-for-
like comparison with PEFT's load + merge + save; "both" adds intake's time.
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


def generate(workdir: Path, hidden: int, layers: int, rank: int) -> None:
    """A random Llama base (written tensor by tensor) and a random LoRA for it."""
    from bench.shared import LlamaShape, write_llama, write_lora

    shape = LlamaShape(hidden, hidden * 11 // 4, layers, hidden // 128, hidden // 512)
    shapes = write_llama(workdir / "base", shape.config(vocab_size=32000))
    write_lora(workdir / "adapter", workdir / "base", shapes, rank)


def prepare(workdir: Path, sizes: list[str]) -> None:
    """Generate the model into ``workdir`` unless it holds one of these sizes already.

    ``generated.json`` is written last, so a generation that was interrupted is redone;
    only the bench's own folders are removed, never anything else in ``workdir``.
    """
    marker = workdir / "generated.json"
    if marker.is_file() and json.loads(marker.read_text()) == sizes:
        return
    marker.unlink(missing_ok=True)
    for folder in ("base", "adapter"):
        shutil.rmtree(workdir / folder, ignore_errors=True)
    # Generated in a child: Linux keeps ru_maxrss across fork and exec, so a parent that
    # had held the model would lend its peak to every contender.
    subprocess.run(
        [*SELF, "--contender", "generate", *sizes, str(workdir)],
        check=True,
    )
    marker.write_text(json.dumps(sizes))


def run_stage(stage: str, base: Path, adapter: Path, workspace: Path) -> None:
    from release.runner import run_release
    from release.spec.schema import ReleaseSpec

    spec = ReleaseSpec(
        name="bench",
        version="1.0",
        base={"path": str(base)},
        adapter={"path": str(adapter)},
        workspace=workspace,
    )
    for _ in run_release(spec, only=[stage]):
        pass


def run_peft(base: Path, adapter: Path, out: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(out)


def measure(contender: str, base: Path, adapter: Path, out: Path) -> dict[str, float]:
    """Run one contender in a fresh interpreter: wall seconds and its own peak RSS."""
    command = [*SELF, "--contender", contender, str(base), str(adapter)]
    if contender != "merge":  # the merge runs in intake's workspace, on its record
        shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run([*command, str(out)], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    return {"wall_s": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--contender", choices=["generate", "adapter", "merge", "peft"])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()

    if args.contender == "generate":
        generate(args.paths[0], args.hidden, args.layers, args.rank)
        return
    if args.contender:  # child: run one contender, report its peak RSS
        base, adapter, out = args.paths
        if args.contender == "peft":
            run_peft(base, adapter, out)
        else:
            run_stage(args.contender, base, adapter, out)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime  # all threads: what a busy machine shares out
        print(json.dumps({"peak_rss_mb": usage.ru_maxrss * 1024 / 2**20, "cpu_s": cpu}))
        return

    from bench.shared import TARGETS

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="merge-bench-"))
    try:
        sizes = [f"--{name}={getattr(args, name)}" for name in ("hidden", "layers", "rank")]
        prepare(workdir, sizes)
        base, adapter = workdir / "base", workdir / "adapter"
        size = sum(p.stat().st_size for p in base.glob("*.safetensors"))
        print(f"base: Llama-shaped, {size / 1e9:.2f} GB bf16; LoRA r={args.rank} on {TARGETS}")
        rows = {
            "ours: intake": measure("adapter", base, adapter, workdir / "ours"),
            "ours: merge": measure("merge", base, adapter, workdir / "ours"),
            "peft": measure("peft", base, adapter, workdir / "peft"),
        }
        intake, merge, peft = rows.values()
        rows["ours: both"] = {
            "wall_s": intake["wall_s"] + merge["wall_s"],
            "peak_rss_mb": max(intake["peak_rss_mb"], merge["peak_rss_mb"]),
            "cpu_s": intake["cpu_s"] + merge["cpu_s"],
        }
        print(
            f"{'':14} {'wall s':>8} {'peak RSS MB':>12} {'cpu s':>7} "
            f"{'wall/peft':>10} {'RSS/peft':>9} {'cpu/peft':>9}"
        )
        for name, row in rows.items():
            ratios = [row[key] / peft[key] for key in ("wall_s", "peak_rss_mb", "cpu_s")]
            print(
                f"{name:14} {row['wall_s']:8.1f} {row['peak_rss_mb']:12.0f} {row['cpu_s']:7.1f} "
                f"{ratios[0]:10.2f} {ratios[1]:9.2f} {ratios[2]:9.2f}"
            )
        print("goal: the merge at most 0.5 of PEFT's wall time and 0.25 of its peak RSS")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
