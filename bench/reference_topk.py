"""Benchmark: how many top logits the kept reference needs for the GGUF checks' figures.

Exports SmolLM2-135M-Instruct (or --model) to each type, has llama.cpp run the probe
on each file (as the GGUF stage does), and compares its logits with the merged model's
full float32 logits (what the stage compared with before it kept a compact reference)
and with the top k of them plus the log-sum-exp (``release.reference.store``), for
several k. Prints, per type and k, the figures and the reference file's bytes.

    python -m bench.reference_topk [--model DIR] [--types f16,q8_0,q4_k_m,q4_0]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

KS = (8, 16, 32, 64, 128, 256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--types", default="f16,q8_0,q4_k_m,q4_0")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from release.demo.smollm2 import smollm2_base
    from release.gguf.agreement import compare
    from release.gguf.formats import FORMATS
    from release.gguf.kquant import quantize_with_llama_cpp
    from release.gguf.llama_cpp_process import LlamaCppChild, Request
    from release.gguf.metadata import ReleaseMetadata
    from release.gguf.writer import export_gguf, open_source
    from release.reference.probe import PROBE
    from release.reference.store import SequenceSet

    model_dir = args.model or smollm2_base()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompts = [tokenizer.encode(text) for text in PROBE.prompts]
    with torch.inference_mode():
        full = [model(torch.tensor([ids])).logits[0].numpy() for ids in prompts]
    del model
    vocab = full[0].shape[-1]
    positions = sum(len(ids) for ids in prompts)
    references = {k: SequenceSet.of(prompts, full, k) for k in (*KS, vocab)}
    print(f"{model_dir.name}: {positions} probe positions, vocabulary {vocab}")
    print(
        f"reference bytes: full float32 {positions * vocab * 4:,}; "
        + ", ".join(f"k={k} {positions * (8 * k + 8):,}" for k in KS)
    )
    print(
        f"{'type':7} {'k':>6} {'top1':>7} {'conf.':>7} {'mean KL':>10} {'KL/full':>8} {'max|d|':>8}"
    )
    with tempfile.TemporaryDirectory(prefix="reference-topk-") as tmp, LlamaCppChild() as llama:
        source = open_source(model_dir)
        f16 = Path(tmp) / "f16.gguf"
        for _ in export_gguf(source, f16, FORMATS["f16"], ReleaseMetadata("bench", "1.0")):
            pass
        for name in args.types.split(","):
            fmt, path = FORMATS[name], Path(tmp) / f"{name}.gguf"
            if name == "f16":
                path = f16
            elif fmt.in_process:
                for _ in export_gguf(source, path, fmt, ReleaseMetadata("bench", "1.0")):
                    pass
            else:
                quantize_with_llama_cpp(f16, path, fmt)
            run = llama.run(Request(str(path), prompts, list(PROBE.prompts), [1], 1))
            got = [values[:, :vocab] for values in run.logits]
            exact = compare(references[vocab], got)
            for k in (*KS, vocab):
                found = compare(references[k], got)
                label = "full" if k == vocab else str(k)
                ratio = found.mean_kl / exact.mean_kl if exact.mean_kl else 1.0
                print(
                    f"{name:7} {label:>6} {found.top1_agreement:7.4f} "
                    f"{found.confident_top1_agreement:7.4f} {found.mean_kl:10.6f} "
                    f"{ratio:8.3f} {found.max_abs_diff:8.4f}"
                )


if __name__ == "__main__":
    main()
