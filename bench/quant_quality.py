"""Benchmark: what each quant costs, and how close the kept reference's KL divergence is
to the full-vocabulary one and to llama-perplexity's.

Exports SmolLM2-135M-Instruct (or --model) as bf16, quantizes it to each type, keeps the
merged model's reference on the held-out text (``release.reference.heldout``; the
shipped sample, or --text) with several top k, and for each type prints: our figures
(``release.gguf.quality``, as the GGUF stage computes them) and the mean KL divergence
over the whole vocabulary (exact) and as llama-perplexity sums it (tokens above
log p = -16), from the full logits of both, so the kept k's error is measured.

    python bench/quant_quality.py [--model DIR] [--text FILE]
        [--types q8_0,q6_k,q5_k_m,q4_k_m,q4_0,q3_k_m,q2_k] [--ks 64,256]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--text", type=Path)
    parser.add_argument("--types", default="q8_0,q6_k,q5_k_m,q4_k_m,q4_0,q3_k_m,q2_k")
    parser.add_argument("--ks", default="64,256")
    args = parser.parse_args()
    sys.path[0] = str(Path.cwd())  # bench/gguf.py must not shadow the gguf package

    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from release.core.relay import finish
    from release.demo.smollm2 import smollm2_base
    from release.gguf.formats import FORMATS
    from release.gguf.kquant import quantize_with_llama_cpp
    from release.gguf.llama_cpp_process import LlamaCppChild, Request
    from release.gguf.metadata import ReleaseMetadata
    from release.gguf.quality import ScoredReference, quant_quality
    from release.gguf.writer import export_gguf, open_source
    from release.reference.heldout import SET, heldout_text, scored
    from release.reference.probe import PROBE
    from release.reference.record import model_reference
    from release.reference.store import SequenceSet, load_reference, save_reference

    model_dir = args.model or smollm2_base()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    text = heldout_text(args.text)
    ks = [int(k) for k in args.ks.split(",")]
    with tempfile.TemporaryDirectory(prefix="quant-quality-") as tmp:
        started = time.monotonic()
        kept = finish(model_reference(model, tokenizer, PROBE, text))
        print(f"reference (probe and held-out chunks): {time.monotonic() - started:.1f} s")
        chunks = kept.sets[SET].sequences()
        vocab = kept.vocab_rows
        with torch.inference_mode():
            full = [model(torch.tensor([ids])).logits[0].double().numpy() for ids in chunks]
        del model
        references = {}
        for k in ks:  # the same run kept with each k
            references[k] = Path(tmp) / f"reference-{k}.safetensors"
            sets = kept.sets | {SET: SequenceSet.of(chunks, full, k)}
            save_reference(dataclasses.replace(kept, sets=sets), references[k])
            print(f"reference k={k}: {references[k].stat().st_size:,} bytes")
        full_ref = [x[scored(len(x))] for x in full]
        ref_logp = np.concatenate([_log_softmax(x) for x in full_ref])
        print(f"{text.name}: {len(chunks)} chunks, {ref_logp.shape[0]} scored tokens")
        source = open_source(model_dir)
        bf16 = Path(tmp) / "bf16.gguf"
        for _ in export_gguf(source, bf16, FORMATS["bf16"], ReleaseMetadata("bench", "1.0")):
            pass
        header = f"{'type':7} {'k':>5} {'KLD mean':>9} {'median':>8} {'p99':>8} {'max':>7}"
        header += f" {'top1':>6} {'PPL':>8} {'ratio':>6} {'coarse':>8} {'full KL':>8}"
        header += f" {'lp -16':>8} {'s':>5}"
        print(header)
        with LlamaCppChild() as llama:
            for name in args.types.split(","):
                path = Path(tmp) / f"{name}.gguf"
                quantize_with_llama_cpp(bf16, path, FORMATS[name])
                full_q = _full_logits(path, chunks, vocab)
                q_logp = np.concatenate([_log_softmax(x) for x in full_q])
                p = np.exp(ref_logp)
                exact = float((p * (ref_logp - q_logp)).sum(-1).mean())
                above = ref_logp > -16
                lp = float(np.where(above, p * (ref_logp - q_logp), 0).sum(-1).mean())
                for k in ks:
                    started = time.monotonic()
                    request = Request(str(path), [[1, 2]], ["x"], [1], 1)
                    reference = {"reference": str(references[k]), "vocab_rows": vocab}
                    run = llama.run(dataclasses.replace(request, **reference))
                    seconds = time.monotonic() - started
                    scored_ref = ScoredReference.of(load_reference(references[k]).sets[SET])
                    ours = quant_quality(scored_ref, run.heldout)
                    log_q = run.heldout.top_logits - run.heldout.logsumexp[:, None]
                    spread = (log_q - scored_ref.log_p).var(-1) / 2 * scored_ref.p_rest
                    coarse = ours.kld_mean - float(spread.mean())
                    print(
                        f"{name:7} {k:5} {ours.kld_mean:9.5f} {ours.kld_median:8.5f} "
                        f"{ours.kld_p99:8.4f} {ours.kld_max:7.3f} {ours.same_top1:6.3f} "
                        f"{ours.ppl:8.3f} {ours.ppl_ratio:6.3f} {coarse:8.5f} {exact:8.5f} "
                        f"{lp:8.5f} {seconds:5.1f}"
                    )


def _log_softmax(x):
    import numpy as np

    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _full_logits(path: Path, chunks: list[list[int]], vocab: int):
    import llama_cpp
    import numpy as np

    from release.gguf.llama_cpp_process import FLASH_ATTENTION
    from release.reference.heldout import scored

    llm = llama_cpp.Llama(
        str(path),
        n_ctx=len(chunks[0]) + 8,
        logits_all=True,
        verbose=False,
        flash_attn=FLASH_ATTENTION,  # as the GGUF stage's child runs the file
    )
    out = []
    for ids in chunks:
        llm.reset()
        llm.eval(ids)
        out.append(np.array(llm.scores[scored(len(ids))], np.float64)[:, :vocab])
    llm.close()
    return out


if __name__ == "__main__":
    main()
