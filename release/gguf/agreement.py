"""Does the GGUF compute what the merged model computes? Asked of readers we did not write.

The merged model's reference (``release.reference``: kept by the evaluate stage from
its run of the merged model, or computed once by this stage where that stage is off)
holds the probe prompts' token ids, the merged model's next-token distribution at each
position (its top-k logits and the log-sum-exp over the vocabulary) and its greedy
answer to a smoke prompt. Each GGUF file is loaded once by llama.cpp (llama-cpp-python;
one child process for all the stage's files: ``llama_cpp_process``), fed the *same
token ids*, and compared position by position: the share of positions whose top-1 token
agrees (over all positions, and over those where the reference is confident), the mean
KL divergence (over the reference's kept tokens and the rest of the vocabulary as one
outcome) and the largest absolute difference of the kept tokens' logits. llama.cpp's
own tokenizer is checked against the reference's token ids on the same prompts, and a
smoke prompt is answered greedily so a person can read what the file says.

What the compact reference changes against full logits: top-1 and confident top-1 are
exact (the top two logits are kept); the KL merges the tokens past the top k into one
outcome, which can only lower it (a coarser partition), by what the tail's own shape
differs, and ``max_abs_diff`` is over the tokens that carry the mass, not the far tail
(measured on SmolLM2: README "Reference logits").

transformers' GGUF loader checks a file only where llama.cpp is not installed. Where
llama.cpp runs, the file is checked by the runtime people run GGUF files with; a second
reader adds no property of the file, only its own way of reading it (gguf-py's numpy
dequantization, a float32 model rebuilt from it), and it cost about three quarters of
the stage (SmolLM2, f16 + q8_0 + q4_k_m).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from release.core.quiet import held_stderr
from release.gguf.llama_cpp_process import LlamaCppRun, Request, run_llama_cpp
from release.gguf.quality import ScoredReference
from release.gguf.reference_process import KeptReference, ReferenceRun
from release.reference import heldout as heldouts
from release.reference import probe as probes
from release.reference.store import Reference, SequenceSet, load_reference

CONFIDENT_GAP = 0.5
"""Logits by which the reference's top token must lead the runner-up for a position to
count as confident. Quantization noise flips near-ties (on SmolLM2, every q8_0
disagreement under llama.cpp had a gap under 0.3), which says nothing about the file."""


@dataclass(frozen=True)
class Agreement:
    top1_agreement: float
    """Share of all probe positions where both pick the same top token."""
    confident_top1_agreement: float
    """The same, over positions where the reference is confident (``CONFIDENT_GAP``);
    this is what the per-type tolerance is checked against."""
    max_abs_diff: float
    """The largest difference of a logit the reference kept (its top k)."""
    mean_kl: float
    """Mean KL(reference || candidate) of the next-token distributions, in nats, over
    the reference's top k tokens and the rest of the vocabulary as one outcome."""


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@dataclass(frozen=True)
class _Prepared:
    """One sequence's reference with what every comparison reads of it, worked out once
    per stage rather than once per file."""

    top_logits: np.ndarray
    top_ids: np.ndarray
    sure: np.ndarray
    log_p: np.ndarray
    """float64: the kept tokens' log-probabilities."""
    p: np.ndarray
    p_rest: np.ndarray
    """The probability of every token past the kept ones, as one outcome."""


def _prepare(values: SequenceSet) -> list[_Prepared]:
    prepared = []
    for top, ids, lse in zip(
        values.split(values.top_logits),
        values.split(values.top_ids),
        values.split(values.logsumexp),
        strict=True,
    ):
        log_p = top.astype(np.float64) - lse[:, None]
        p = np.exp(log_p)
        gap = top[:, 0] - top[:, 1] if top.shape[1] > 1 else np.full(len(top), np.inf)
        rest = np.clip(1.0 - p.sum(-1), 0.0, 1.0)
        prepared.append(_Prepared(top, ids, gap >= CONFIDENT_GAP, log_p, p, rest))
    return prepared


def compare(reference: SequenceSet, candidate: Sequence[np.ndarray]) -> Agreement:
    """``candidate``'s full logits (one array per sequence) against ``reference``."""
    return _compare(_prepare(reference), candidate)


def _compare(reference: Sequence[_Prepared], candidate: Sequence[np.ndarray]) -> Agreement:
    agree = total = confident_agree = confident = 0
    worst, kl_sum = 0.0, 0.0
    for ref, got in zip(reference, candidate, strict=True):
        same = ref.top_ids[:, 0] == got.argmax(-1)
        agree += int(same.sum())
        total += ref.top_logits.shape[0]
        confident_agree += int((same & ref.sure).sum())
        confident += int(ref.sure.sum())
        kept = np.take_along_axis(got, ref.top_ids, -1)
        worst = max(worst, float(np.abs(ref.top_logits - kept).max()))
        log_q = _log_softmax(got.astype(np.float64))
        kl_sum += float((ref.p * (ref.log_p - np.take_along_axis(log_q, ref.top_ids, -1))).sum())
        np.put_along_axis(log_q, ref.top_ids, -np.inf, -1)
        q_rest = np.exp(log_q).sum(-1)
        tail = (ref.p_rest > 0) & (q_rest > 0)
        kl_sum += float(
            (ref.p_rest[tail] * (np.log(ref.p_rest[tail]) - np.log(q_rest[tail]))).sum()
        )
    return Agreement(
        top1_agreement=round(agree / total, 4),
        confident_top1_agreement=round(confident_agree / confident, 4) if confident else 1.0,
        max_abs_diff=round(worst, 4),
        mean_kl=round(kl_sum / total, 6),
    )


class Probe:
    """The probe prompts' and the smoke prompt's token ids, the merged model's
    distributions on the prompts and its greedy answer: read from its reference."""

    def __init__(self, kept: KeptReference, *, folder_owner: object = None) -> None:
        self.kept = kept
        self._folder_owner = folder_owner
        """What keeps the reference's folder while the probe lives (a check outside a
        release): llama.cpp's child reads the held-out set from the file itself."""
        self.reference: Reference = load_reference(kept.path)
        self.probe_set = self.reference.sets[probes.PROBE.name]
        self.texts: tuple[str, ...] = probes.PROBE.prompts
        self.prompts = self.probe_set.sequences()
        self.smoke_ids = self.reference.smoke_ids
        self.smoke_output = self.reference.smoke_answer
        self.vocab_rows = self.reference.vocab_rows

    @functools.cached_property
    def _prepared(self) -> list[_Prepared]:
        return _prepare(self.probe_set)

    @functools.cached_property
    def heldout(self) -> ScoredReference | None:
        """The held-out chunks' scored positions (``release.gguf.quality``); None where
        the reference holds none (a text shorter than one chunk)."""
        chunks = self.reference.sets.get(heldouts.SET)
        return ScoredReference.of(chunks) if chunks is not None else None

    def compare(self, candidate: Sequence[np.ndarray]) -> Agreement:
        """``candidate``'s logits against the merged model's (``compare``)."""
        return _compare(self._prepared, candidate)


def reference_probe(model_dir: Path) -> Probe:
    """The probe of the model in ``model_dir``, computed now in a child process (for a
    check outside a release: the stage reads the evaluate stage's)."""
    run = ReferenceRun(model_dir)
    try:
        return Probe(run.wait(), folder_owner=run)  # its folder goes with the probe
    except BaseException:
        run.close()
        raise


@dataclass(frozen=True)
class LoaderResult:
    agreement: Agreement
    smoke_output: str
    tokenizer_agrees: bool | None = None
    """llama.cpp only: its tokenizer gives the reference's token ids on every prompt."""
    llama_cpp: LlamaCppRun | None = None
    """llama.cpp only: what its child process reported (stop ids, the projector)."""


def transformers_check(path: Path, probe: Probe) -> LoaderResult:
    """Load ``path`` with transformers' GGUF loader, compare with the probe and answer
    the smoke prompt, decoded by the file's own tokenizer (for a machine without
    llama.cpp)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with held_stderr():  # its GGUF loader draws a tqdm bar of its own
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    with torch.inference_mode():
        logits = [model(torch.tensor([ids])).logits[0].float().numpy() for ids in probe.prompts]
        smoke = torch.tensor([probe.smoke_ids])
        out = model.generate(
            smoke,
            attention_mask=torch.ones_like(smoke),
            max_new_tokens=probes.PROBE.smoke_tokens,
            do_sample=False,
        )
    answer = tokenizer.decode(out[0, len(probe.smoke_ids) :], skip_special_tokens=True)
    return LoaderResult(probe.compare([values[:, : probe.vocab_rows] for values in logits]), answer)


def llama_cpp_request(path: Path, probe: Probe, mmproj: Path | None = None) -> Request:
    """What llama.cpp's child is asked of ``path``; with ``mmproj``, its multimodal
    loader opens that too."""
    return Request(
        path=str(path),
        prompts=probe.prompts,
        texts=list(probe.texts),
        smoke_ids=probe.smoke_ids,
        smoke_tokens=probes.PROBE.smoke_tokens,
        mmproj=str(mmproj) if mmproj else None,
        reference=str(probe.kept.path) if heldouts.SET in probe.reference.sets else None,
        vocab_rows=probe.vocab_rows,
    )


def llama_cpp_result(probe: Probe, run: LlamaCppRun) -> LoaderResult:
    """What llama.cpp's child found, compared with the probe (over the merged model's
    vocabulary rows: a GGUF may hold padding rows past them)."""
    rows = probe.vocab_rows
    agreement = probe.compare([values[:, :rows] for values in run.logits])
    return LoaderResult(agreement, run.answer_text, run.tokenizer_agrees, run)


def llama_cpp_check(path: Path, probe: Probe, *, mmproj: Path | None = None) -> LoaderResult:
    """Load ``path`` with llama.cpp in a child process of its own and compare with the
    probe (the stage sends its files to one child: ``release.gguf.verify``)."""
    return llama_cpp_result(probe, run_llama_cpp(llama_cpp_request(path, probe, mmproj)))
