"""Model-level sanity checks: is the merged model the trained model, and does it work?

- ``merge_equivalence``: logits of the merged model vs PEFT's merge of base + adapter
  (rounded to the merged checkpoint's dtype) on fixed probe prompts, measured against
  the adapter's own effect on the base.
- ``perplexity``: on held-out text, in the chunks ``release.reference.heldout`` cuts
  (bounded: one forward pass a chunk, 4096 tokens at most).
- ``chat_smoke``: greedy generation through the tokenizer's chat template, then checks
  that the answer is non-empty, stops, is not degenerate and leaks no special tokens.

The checks run in the dtype ``release.evaluate.loading`` picks (bf16 on accelerators):
logits are compared in float32, and the limits are shares of the adapter's own effect,
so rounding stays well inside them while a broken merge does not (tests/test_evaluate.py
breaks merges on purpose to show it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass

import torch

from release.core.errors import WorkError
from release.core.waiting import ticking
from release.reference.batched import pad_id, padded_logits
from release.reference.greedy import greedy, model_eos

PROBE_PROMPTS = (
    "The capital of France is",
    "def fibonacci(n):",
    "Convert 12 kilometres to miles.",
    "Water boils at",
    "Once upon a time, in a small village,",
    "The three primary colours are",
    "Translate to German: good morning",
    "import numpy as np\n",
)

Perplexity = Generator[int, None, float]
"""A perplexity pass: yields the tokens scored so far, returns the perplexity."""

ROUNDING_SLICE = 2**22
"""Elements rounded at once when the reference merge is stored as the checkpoint is: a
bench model's 192 MiB embedding rounded whole raised the eval's float32 peak by 72 MiB."""

ROUNDING_STEP = 32
"""Parameters rounded between two progress steps of the reference merge."""

SMOKE_PROMPTS = (
    "Convert 25 degrees Celsius to Fahrenheit.",
    "What is the capital of Japan?",
    "Write one sentence about the sea.",
)


def next_token_logits(model, tokenizer, prompts: Sequence[str]) -> Iterator[torch.Tensor]:
    """Logits for every position of each prompt, all prompts in one forward pass
    (``reference.batched``), yielded one prompt at a time."""
    encoded = [tokenizer(prompt).input_ids for prompt in prompts]
    every = padded_logits(model, encoded, pad_id(tokenizer))
    for prompt, logits in zip(prompts, every, strict=True):
        if not bool(torch.isfinite(logits).all()):
            raise WorkError(
                f"the model gives inf or NaN logits on the prompt {prompt!r}: its weights "
                "hold or overflow to non-finite values",
                hint="check the adapter's weights and the merge's dtype",
            )
        yield logits


@dataclass(frozen=True)
class Equivalence:
    """How far the merged model is from PEFT's own merge of the adapter, against how far
    the adapter moves the base. A right merge differs only by the order of its rounding
    (a small share of the adapter's effect); a wrong one (scale, transposition, missing
    tensors, another base) by what it breaks."""

    prompts: int
    positions: int
    max_abs_diff: float
    mean_abs_diff: float
    adapter_effect: float  # mean |logits(base + adapter) - logits(base)|
    top1_agreement: float

    @property
    def relative_error(self) -> float:
        return self.mean_abs_diff / self.adapter_effect if self.adapter_effect > 0 else 0.0


@dataclass(frozen=True)
class ProbeReference:
    """What the equivalence check keeps of base + adapter once that model is freed: the
    logits of PEFT's merge on the probe prompts (float32, on the CPU) and the adapter's
    mean effect."""

    prompts: tuple[str, ...]
    logits: list[torch.Tensor]
    adapter_effect: float

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.logits)


def probe_reference_steps(prompts: Sequence[str]) -> int:
    """The steps ``probe_reference`` yields: each prompt twice, and the merge."""
    return 2 * len(prompts) + 1


def probe_reference(
    with_adapter, tokenizer, prompts: Sequence[str], stored: torch.dtype, bare: list[torch.Tensor]
) -> Generator[int, None, ProbeReference]:
    """The adapter's effect (``with_adapter``, a PeftModel, against ``bare``: its base's
    logits on ``prompts``, with the adapter disabled), then PEFT's merge of it with every
    weight rounded to ``stored``, the dtype the merged checkpoint holds: the logits a
    right merge gives.

    Not base + adapter's own logits: a merged checkpoint in bf16 loses what rounding
    ``W + delta`` to bf16 loses, which is the same share of the logits for every adapter,
    so a weakly trained adapter's right merge measured as a large share of its small
    effect (the demo's LoRA at half strength: 0.34 in bf16, 0.18 in float32, limit 0.25;
    bench/equivalence.py). Against PEFT's merge stored alike, only a wrong merge differs.
    ``with_adapter`` is merged in place: take what else is needed of it first. The base's
    logits are the same for every adapter on that base (``release.evaluate.base_figures``
    keeps them)."""
    with_adapter = with_adapter.eval()
    total, count, step = 0.0, 0, 0
    unmerged = next_token_logits(with_adapter, tokenizer, prompts)
    for ours, base in zip(unmerged, bare, strict=True):
        total += (ours.cpu() - base).abs().sum().item()
        count += ours.numel()
        step += 1
        yield step
    merged = yield from ticking(with_adapter.merge_and_unload, lambda _: step)  # 30 s at 4B
    with torch.no_grad():  # in place, a slice at a time: no copy of a large tensor
        for index, parameter in enumerate(merged.parameters(), 1):
            if parameter.is_floating_point() and parameter.dtype != stored:
                flat = parameter.view(-1) if parameter.is_contiguous() else parameter
                for part in flat.split(ROUNDING_SLICE):
                    part.copy_(part.to(stored))
            if index % ROUNDING_STEP == 0:  # the same step again: 4B's 15 GB take a while
                yield step
    step += 1
    yield step
    reference = []
    for logits in next_token_logits(merged, tokenizer, prompts):
        reference.append(logits.cpu())
        step += 1
        yield step
    return ProbeReference(tuple(prompts), reference, total / count if count else 0.0)


def merge_equivalence(
    merged, tokenizer, reference: ProbeReference
) -> Generator[int, None, Equivalence]:
    """The merged model's logits on the probe prompts against base + adapter's; yields
    the prompts done."""
    ours = []
    for logits in next_token_logits(merged, tokenizer, reference.prompts):
        ours.append(logits.cpu())
        yield len(ours)
    diff = torch.cat([(a - b).abs().flatten() for a, b in zip(ours, reference.logits, strict=True)])
    agree = sum(
        (a.argmax(-1) == b.argmax(-1)).sum().item()
        for a, b in zip(ours, reference.logits, strict=True)
    )
    positions = sum(logits.shape[0] for logits in ours)
    return Equivalence(
        prompts=len(reference.prompts),
        positions=positions,
        max_abs_diff=diff.max().item(),
        mean_abs_diff=diff.mean().item(),
        adapter_effect=reference.adapter_effect,
        top1_agreement=agree / positions,
    )


@torch.no_grad()
def perplexity(
    model,
    sequences: Sequence[Sequence[int]],
    keep: Callable[[Sequence[int], torch.Tensor], None] | None = None,
) -> Perplexity:
    """exp(mean next-token loss) over ``sequences`` (the held-out text as
    ``release.reference.heldout.sequences`` cuts it), one forward pass each: a generator
    that yields the tokens scored after each and returns the perplexity, so the caller can
    show a pass that takes minutes moving. ``keep`` is handed each sequence's float32
    logits: the merged model's pass keeps its reference from them, so no model reads the
    text twice."""
    device = model.get_input_embeddings().weight.device
    total_loss, total_tokens = 0.0, 0
    for ids in sequences:
        chunk = torch.tensor(list(ids), device=device)
        logits = model(input_ids=chunk[None]).logits[0].float()
        loss = torch.nn.functional.cross_entropy(logits[:-1], chunk[1:], reduction="sum")
        total_loss += loss.item()
        total_tokens += chunk.numel() - 1
        if keep is not None:
            keep(ids, logits)
        del logits  # before the next pass: one sequence's logits at a time
        yield total_tokens
    value = float(torch.exp(torch.tensor(total_loss / max(total_tokens, 1))))
    if not math.isfinite(value):  # NaN passes every comparison with a limit
        raise WorkError(
            f"perplexity on the held-out text is {value}: the model's logits are not finite",
            hint="check the adapter's weights and the merge's dtype",
        )
    return value


def scored_tokens(sequences: Sequence[Sequence[int]]) -> int:
    """The tokens ``perplexity`` scores: all but the first of each sequence."""
    return sum(max(len(ids) - 1, 0) for ids in sequences)


def repeated_ngram_ratio(tokens: Sequence[int], n: int = 3) -> float:
    """Share of n-grams that repeat an earlier one: 0 for varied text, near 1 for loops."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


@dataclass(frozen=True)
class SmokeResult:
    prompt: str
    output: str
    stop: str  # "eos" or "limit"
    new_tokens: int
    repeated_ngram_ratio: float
    leaked: list[str]
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_facts(self) -> dict:
        return asdict(self) | {"passed": self.passed}


@torch.no_grad()
def chat_smoke(
    model, tokenizer, prompt: str, *, max_new_tokens: int, max_repeat: float = 0.5
) -> Generator[int, None, SmokeResult]:
    """A greedy answer to ``prompt``, checked: a generator that yields the new tokens so
    far every few of them (``release.reference.greedy``) and returns the result."""
    device = model.get_input_embeddings().weight.device
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
    eos = _eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    new = yield from greedy(model, ids, max_new_tokens, eos, pad)
    stop = "eos" if new and new[-1] in eos else "limit"
    answer_ids = new[:-1] if stop == "eos" else new
    raw = tokenizer.decode(answer_ids, skip_special_tokens=False)
    leaked = [tok for tok in _special_strings(tokenizer) if tok in raw]
    output = tokenizer.decode(answer_ids, skip_special_tokens=True).strip()
    ratio = repeated_ngram_ratio(answer_ids)
    problems = []
    if not output:
        problems.append("empty answer")
    if ratio > max_repeat:
        problems.append(f"degenerate: {ratio:.0%} of 3-grams repeat")
    if leaked:
        problems.append(f"special tokens in the text: {', '.join(leaked)}")
    return SmokeResult(prompt, output, stop, len(new), round(ratio, 4), leaked, problems)


def _eos_ids(model, tokenizer) -> set[int]:
    eos = model_eos(model)
    if tokenizer.eos_token_id is not None:
        eos.add(tokenizer.eos_token_id)
    return eos


def _special_strings(tokenizer) -> list[str]:
    """Special and template tokens (<|im_start|>, <|eot_id|>…) that must not appear."""
    added = [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
    return sorted({*tokenizer.all_special_tokens, *added} - {""})
