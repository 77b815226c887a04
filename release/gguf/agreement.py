"""Does the GGUF compute what the merged model computes? Asked of readers we did not write.

The merged model (transformers, float32, in a child process: ``reference_process``)
gives reference logits on a few probe prompts, once per stage. Each GGUF file is then
loaded once by llama.cpp (llama-cpp-python; one child process for all the stage's
files: ``llama_cpp_process``), fed the *same token ids*, and compared
position by position: the share of positions whose top-1 token agrees (over all
positions, and over those where the reference is confident), the mean KL divergence and
the largest absolute logit difference. llama.cpp's own tokenizer is checked against the
HF one on the same prompts, and a smoke prompt is answered greedily so a person can read
what the file says.

transformers' GGUF loader checks a file only where llama.cpp is not installed. Where
llama.cpp runs, the file is checked by the runtime people run GGUF files with; a second
reader adds no property of the file, only its own way of reading it (gguf-py's numpy
dequantization, a float32 model rebuilt from it), and it cost about three quarters of
the stage (SmolLM2, f16 + q8_0 + q4_k_m).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from release.core.quiet import held_stderr
from release.gguf.llama_cpp_process import LlamaCppRun, Request, run_llama_cpp
from release.gguf.reference_process import SMOKE_TOKENS, ReferenceChild, transformers_run

PROBE_PROMPTS = (
    "The capital of France is Paris. The capital of Italy is Rome, and the capital of "
    "Spain is Madrid. Paris is famous for the Eiffel Tower, which was built in 1889 for "
    "the World's Fair.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + "
    "fibonacci(n - 2)\n\n\nfor i in range(10):\n    print(i, fibonacci(i))\n",
    "Photosynthesis is the process by which green plants turn sunlight, water and carbon "
    "dioxide into glucose and oxygen. It takes place mainly in the leaves, inside the "
    "chloroplasts.",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who "
    "went out every morning before dawn. One day he caught a fish that could speak, and "
    "it asked him to let it go.",
    "To make a cup of tea, boil fresh water, pour it over the tea leaves and let them "
    "steep for three to five minutes. Then remove the leaves and add milk or lemon.",
    "The water cycle describes how water evaporates from the oceans, forms clouds, falls "
    "as rain or snow, and flows back to the sea through rivers and groundwater.",
)
SMOKE_PROMPT = "What is the capital of France? Answer in one sentence."


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
    mean_kl: float
    """Mean KL(reference || candidate) of the next-token distributions, in nats."""


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


@dataclass(frozen=True)
class _Prepared:
    """One prompt's reference logits with what every comparison reads of them, worked
    out once per stage rather than once per file."""

    logits: np.ndarray
    top1: np.ndarray
    sure: np.ndarray
    log_p: np.ndarray
    p: np.ndarray


def _prepare(ref: np.ndarray) -> _Prepared:
    top2 = np.partition(ref, -2, axis=-1)[:, -2:]  # the runner-up, then the top
    log_p = _log_softmax(ref.astype(np.float64))
    return _Prepared(
        ref, ref.argmax(-1), (top2[:, 1] - top2[:, 0]) >= CONFIDENT_GAP, log_p, np.exp(log_p)
    )


def compare(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> Agreement:
    return _compare([_prepare(ref) for ref in reference], candidate)


def _compare(reference: Sequence[_Prepared], candidate: Sequence[np.ndarray]) -> Agreement:
    agree = total = confident_agree = confident = 0
    worst, kl_sum = 0.0, 0.0
    for ref, got in zip(reference, candidate, strict=True):
        same = ref.top1 == got.argmax(-1)
        agree += int(same.sum())
        total += ref.logits.shape[0]
        confident_agree += int((same & ref.sure).sum())
        confident += int(ref.sure.sum())
        worst = max(worst, float(np.abs(ref.logits - got).max()))
        log_q = _log_softmax(got.astype(np.float64))
        kl_sum += float((ref.p * (ref.log_p - log_q)).sum())
    return Agreement(
        top1_agreement=round(agree / total, 4),
        confident_top1_agreement=round(confident_agree / confident, 4) if confident else 1.0,
        max_abs_diff=round(worst, 4),
        mean_kl=round(kl_sum / total, 6),
    )


class Probe:
    """Token ids of the probe prompts and the smoke prompt, from the merged model's
    tokenizer; the merged model's own logits and greedy answer, which wait for its
    child the first time they are read; and its tokenizer's ``decode``."""

    texts: tuple[str, ...] = PROBE_PROMPTS

    def __init__(self, child: ReferenceChild) -> None:
        self._child = child
        self.prompts, self.smoke_ids = child.ids()

    @property
    def logits(self) -> list[np.ndarray]:
        return self._child.reference().logits

    @property
    def smoke_output(self) -> str:
        return self._child.reference().answer

    @property
    def vocab_rows(self) -> int:
        return self.logits[0].shape[-1]

    @functools.cached_property
    def _prepared(self) -> list[_Prepared]:
        return [_prepare(ref) for ref in self.logits]

    def compare(self, candidate: Sequence[np.ndarray]) -> Agreement:
        """``candidate``'s logits against the merged model's (``compare``)."""
        return _compare(self._prepared, candidate)

    def decode(self, ids: list[int]) -> str:
        """Ids to text by the merged model's tokenizer (special tokens left out)."""
        return self._child.decode(ids)


def start_reference(model_dir: Path) -> ReferenceChild:
    """The merged model's child, started now on the probe (``probe_from`` waits for
    its token ids); the caller closes it once it has no more answers to decode."""
    return ReferenceChild(model_dir, list(PROBE_PROMPTS), SMOKE_PROMPT)


def probe_from(child: ReferenceChild) -> Probe:
    """The probe, as soon as the merged model's tokenizer gave its ids."""
    return Probe(child)


def reference_probe(model_dir: Path) -> Probe:
    """The probe, its child closed when the probe is let go."""
    child = start_reference(model_dir)
    probe = probe_from(child)
    weakref.finalize(probe, child.close)
    return probe


@dataclass(frozen=True)
class LoaderResult:
    agreement: Agreement
    smoke_output: str
    tokenizer_agrees: bool | None = None
    """llama.cpp only: its tokenizer gives the HF token ids on every probe prompt."""
    llama_cpp: LlamaCppRun | None = None
    """llama.cpp only: what its child process reported (stop ids, the projector)."""


def transformers_check(path: Path, probe: Probe) -> LoaderResult:
    """Load ``path`` with transformers' GGUF loader, compare with the probe and answer
    the smoke prompt (for a machine without llama.cpp)."""
    import torch
    from transformers import AutoModelForCausalLM

    with held_stderr():  # its GGUF loader draws a tqdm bar of its own
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
    logits, answer = transformers_run(model, probe.prompts, probe.smoke_ids)
    return LoaderResult(probe.compare(logits), probe.decode(answer))


def llama_cpp_request(path: Path, probe: Probe, mmproj: Path | None = None) -> Request:
    """What llama.cpp's child is asked of ``path``; with ``mmproj``, its multimodal
    loader opens that too."""
    return Request(
        path=str(path),
        prompts=probe.prompts,
        texts=list(probe.texts),
        smoke_ids=probe.smoke_ids,
        smoke_tokens=SMOKE_TOKENS,
        mmproj=str(mmproj) if mmproj else None,
    )


def llama_cpp_result(probe: Probe, run: LlamaCppRun) -> LoaderResult:
    """What llama.cpp's child found, compared with the probe (over the merged model's
    vocabulary rows: a GGUF may hold padding rows past them)."""
    rows = probe.vocab_rows
    agreement = probe.compare([values[:, :rows] for values in run.logits])
    return LoaderResult(agreement, probe.decode(run.answer), run.tokenizer_agrees, run)


def llama_cpp_check(path: Path, probe: Probe, *, mmproj: Path | None = None) -> LoaderResult:
    """Load ``path`` with llama.cpp in a child process of its own and compare with the
    probe (the stage sends its files to one child: ``release.gguf.verify``)."""
    return llama_cpp_result(probe, run_llama_cpp(llama_cpp_request(path, probe, mmproj)))
