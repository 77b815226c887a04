"""Benchmark: the GGUF stage's wall time and peak memory, against the preflight's estimate.

Runs the stage's work (``build_gguf_files``) in a child process and samples that child
and every process under it (llama.cpp's child, the reference's child) every 50 ms,
summing their resident memory two ways: RSS (a file two processes map counts twice)
and PSS (shared pages split between them: what the machine holds). Prints the wall,
both peaks, and the preflight's estimate (``release.gguf.needs``).

    python -m bench.gguf_peak [--model DIR | --random-llama HIDDEN:LAYERS:FFN]
                              [--types f16,q8_0,q4_k_m] [--reference evaluate|here]
                              [--code CHECKOUT]

``--random-llama 2048:14:8192`` builds a random bf16 Llama of that shape (SmolLM2's
tokenizer and vocabulary, grouped-query attention with 8 key/value heads of 64, the
tied embedding scaled up so that its predictions are confident), about 1B parameters,
in a temporary folder.

``--reference evaluate`` (the default) has the reference computed first, in a process of
its own, as the evaluate stage keeps it; the stage then reads it. ``here``: the stage
computes it itself, as where the evaluate stage is off. ``--code`` runs another checkout's
stage, its child being that checkout's ``python -m bench.gguf_peak`` (e.g. the main branch
before the reference was kept: it always computes its own in float32, whatever
``--reference`` says).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SELF = [sys.executable, "-m", __spec__.name]
"""This module again, as the child process it runs a contender in."""

REPO = Path(__file__).resolve().parent.parent


def _smaps(pid: int) -> tuple[int, int]:
    """RSS and PSS of one process, in bytes (0, 0 once it is gone)."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def _tree(pid: int) -> list[int]:
    """``pid`` and every process under it."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def measure_tree(command: list[str], cwd: Path, env: dict[str, str]) -> dict:
    """Run ``command``; its wall seconds, the peak summed RSS and PSS of its tree, and
    its last stdout line (JSON)."""
    peaks: dict = {"rss": 0, "pss": 0, "at_peak": []}
    with tempfile.TemporaryFile("w+") as stdout:
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.PIPE)
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                pids = _tree(child.pid)
                sums = [_smaps(pid) for pid in pids]
                peaks["rss"] = max(peaks["rss"], sum(s[0] for s in sums))
                if sum(s[1] for s in sums) > peaks["pss"]:
                    peaks["pss"] = sum(s[1] for s in sums)
                    peaks["at_peak"] = [
                        (_name(pid), s[1]) for pid, s in zip(pids, sums, strict=True)
                    ]
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = child.communicate()
        wall = time.perf_counter() - started
        done.set()
        sampler.join()
        if child.returncode:
            raise SystemExit(f"the stage failed:\n{err.decode()[-3000:]}")
        stdout.seek(0)
        said = json.loads(stdout.read().strip().splitlines()[-1])
    return {
        "wall_s": wall,
        "peak_rss": peaks["rss"],
        "peak_pss": peaks["pss"],
        "at_peak": peaks["at_peak"],
        **said,
    }


def _name(pid: int) -> str:
    """A process's module or script, for the breakdown at the peak."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    named = [w.decode() for w in words if w.startswith(b"release.") or w.endswith(b".py")]
    return named[0] if named else "stage"


def child(model: Path, out: Path, types: list[str], kept: Path | None) -> None:
    """The stage's work on ``model`` (in the checkout on sys.path); prints its timings
    and, from it, the process's own RSS before the work (what the preflight sees used)."""
    import release.gguf.build  # noqa: F401  loaded before "before", as in a release's process
    from bench.shared import build_gguf

    before = _smaps(os.getpid())[0]
    reference = None
    if kept is not None:
        from release.gguf.reference_process import KeptReference
        from release.reference.facts import ReferenceFacts

        facts = ReferenceFacts.model_validate_json((kept / "facts.json").read_text())
        reference = KeptReference(facts, kept / facts.file, "evaluate")
    built = build_gguf(model, out, types, kept=reference)
    agreement = {
        f.type: {
            "top1": f.top1_agreement,
            "confident_top1": f.confident_top1_agreement,
            "kl": f.mean_kl,
            "max_abs_diff": f.max_abs_diff,
        }
        for f in built.facts.files
    }
    print(
        json.dumps(
            {
                "export_s": built.export_seconds,
                "checks_s": built.check_seconds,
                "before_rss": before,
                "agreement": agreement,
            }
        )
    )


def keep_reference(model: Path, folder: Path) -> None:
    """The reference as the evaluate stage keeps it: float32 on the CPU (its plan here)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from release.core.relay import finish
    from release.reference.record import write_reference

    model_obj = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model)
    facts = finish(
        write_reference(
            model_obj, tokenizer, folder, model_id=None, dtype="float32", device="cpu (float32)"
        )
    )
    (folder / "facts.json").write_text(facts.model_dump_json())


def random_llama(shape: str, folder: Path) -> Path:
    """A random bf16 Llama of ``HIDDEN:LAYERS:FFN`` with SmolLM2's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from release.demo.smollm2 import smollm2_base

    hidden, layers, ffn = (int(part) for part in shape.split(":"))
    tokenizer = AutoTokenizer.from_pretrained(smollm2_base())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=8,
        head_dim=64,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    with torch.no_grad():  # confident, as the tests' models: a random model's ties are noise
        model.model.embed_tokens.weight.mul_(20)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--random-llama", metavar="HIDDEN:LAYERS:FFN")
    parser.add_argument("--types", default="f16,q8_0,q4_k_m")
    parser.add_argument("--reference", choices=("evaluate", "here"), default="evaluate")
    parser.add_argument("--code", type=Path, default=REPO)
    parser.add_argument("--json", action="store_true", help="one JSON line instead")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--keep", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        model, out, types, kept = args.child
        child(Path(model), Path(out), types.split(","), Path(kept) if kept != "-" else None)
        return
    if args.keep:
        keep_reference(Path(args.keep[0]), Path(args.keep[1]))
        return

    from release.demo.smollm2 import smollm2_base
    from release.gguf.needs import gguf_needs

    built = tempfile.TemporaryDirectory(prefix="gguf-peak-model-")
    if args.random_llama:
        model = random_llama(args.random_llama, Path(built.name))
    else:
        model = (args.model or smollm2_base()).resolve()
    code = args.code.resolve()
    env = {**os.environ, "PYTHONPATH": str(code)}
    types = args.types.split(",")
    size = sum(p.stat().st_size for p in model.glob("*.safetensors"))
    here = args.reference == "here" or code != REPO
    needs = gguf_needs(model, types, reference_here=here)
    print(f"model: {model.name}, {size / 2**20:.0f} MiB safetensors; types {args.types}")
    print(f"code: {code}; reference: {'computed by the stage' if here else 'kept'}")
    with tempfile.TemporaryDirectory(prefix="gguf-peak-") as tmp:
        kept = "-"
        if not here:
            kept_dir = Path(tmp) / "kept"
            kept_dir.mkdir()
            command = [*SELF, "--keep", str(model), str(kept_dir)]
            subprocess.run(command, cwd=REPO, env=env, check=True)
            kept = str(kept_dir)
        command = [*SELF, "--child", str(model), str(Path(tmp) / "out")]
        result = measure_tree([*command, args.types, kept], code, env)
    grown_rss = result["peak_rss"] - result["before_rss"]
    grown_pss = result["peak_pss"] - result["before_rss"]
    if args.json:
        summary = {"estimate": needs.memory_bytes, "grown_rss": grown_rss, "grown_pss": grown_pss}
        print(json.dumps({**summary, "wall_s": result["wall_s"]}))
        built.cleanup()
        return
    mib = 2**20
    print(
        f"wall {result['wall_s']:.1f} s (export {result['export_s']:.1f} s, "
        f"checks {result['checks_s']:.1f} s)"
    )
    print(
        f"peak of the tree: RSS {result['peak_rss'] / mib:.0f} MiB, PSS "
        f"{result['peak_pss'] / mib:.0f} MiB; the stage's process before the work "
        f"{result['before_rss'] / mib:.0f} MiB"
    )
    at_peak = ", ".join(f"{name} {pss / mib:.0f}" for name, pss in result["at_peak"])
    print(f"at the PSS peak (MiB): {at_peak}")
    print(
        f"grown past that: RSS {grown_rss / mib:.0f} MiB, PSS {grown_pss / mib:.0f} MiB; "
        f"estimate {needs.memory_bytes / mib:.0f} MiB "
        f"({needs.memory_bytes / grown_pss - 1:+.1%} of the PSS)"
    )
    from release.checkpoint.safetensors import parameter_counts

    parameters, largest = parameter_counts(model)
    old = 2 * parameters * 4 + 2 * largest * 4
    print(f"(the estimate before the reference was kept: two float32 models, {old / mib:.0f} MiB)")
    for name, figures in result["agreement"].items():
        print(f"  {name}: {json.dumps(figures)}")
    built.cleanup()


if __name__ == "__main__":
    main()
