"""The model checks of the sanity eval: is the merged model the trained model, and does
it work?

1. merge equivalence: merged model vs PEFT's merge of base + adapter stored alike, logits
   on probe prompts, against the adapter's effect (base + adapter's logits less the
   base's);
2. perplexity on held-out text: the base and the merged model; a merged model clearly
   worse than its base points at a wrong base or a broken run. (Base + adapter's own
   perplexity is not measured: the equivalence check has shown the merged model to be
   base + adapter on logits, so its pass would prove nothing more.)
3. chat smoke test: greedy answers through the chat template, checked for sense;
4. the merged model's reference for the GGUF checks, kept where the stage says
   (``release.reference``), so no later stage loads the model again.

One model is resident at a time: base + adapter first, for what the checks need of it
(the base's perplexity and probe logits, base + adapter's probe logits, PEFT's merge);
then it is freed and the merged model loads to be compared. The peak is one model, not
two (``release.evaluate.needs``). What the base alone gives is the same for every
adapter on it: ``release.evaluate.base_figures`` keeps it, so a second adapter on the
same base skips the base's passes. Each perplexity pass reports its progress after every
window (tokens done, rate, time left): at 4B on a CPU a pass is minutes.

The arithmetic of each check is in ``release.evaluate.sanity``; dtype and placement in
``release.evaluate.loading``; this module runs the checks in order and turns a failed
one into a one-line error.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from release.core.errors import WorkError
from release.core.events import Event, Reporter
from release.core.quiet import held_stderr
from release.core.waiting import ticking
from release.evaluate.base_figures import (
    BaseFigures,
    BaseKey,
    base_key,
    read_figures,
    write_figures,
)
from release.evaluate.facts import (
    BaseFiguresFacts,
    EquivalenceFacts,
    EvaluateFacts,
    PerplexityFacts,
    SmokeFacts,
)
from release.evaluate.loading import (
    LoadPlan,
    checkpoint_dtype,
    load_reporting,
    release_memory,
    steady_heap,
)
from release.evaluate.settings import EvaluateSettings
from release.reference import probe as probes
from release.reference.facts import ReferenceFacts
from release.reference.heldout import heldout_text
from release.reference.record import ReferenceTarget, heldout_sequences, whole_chunks
from release.reference.store import SequenceSet
from release.spec.schema import EvalSpec

if TYPE_CHECKING:
    from release.evaluate.sanity import Perplexity, ProbeReference


Done = TypeVar("Done")
Step = TypeVar("Step")


def model_checks(
    settings: EvaluateSettings,
    base_dir: Path,
    adapter_dir: Path,
    merged_dir: Path,
    plan: LoadPlan,
    report: Reporter,
    *,
    base_fingerprint: str | None,
    keep_reference: ReferenceTarget | None = None,
) -> Generator[Event, None, EvaluateFacts]:
    """Merge equivalence, perplexity and the chat smoke test; returns their facts (the
    stage adds the gate's). ``base_fingerprint`` (intake's) keys the base's figures in
    the cache; None computes them and keeps nothing. With ``keep_reference``, the merged
    model's reference for the GGUF checks too."""
    yield report.log("reading the tokenizer and the held-out text")  # seconds of imports
    from transformers import AutoTokenizer

    from release.evaluate.sanity import PROBE_PROMPTS, merge_equivalence

    spec, remote = settings.eval, settings.trust_remote_code  # nothing else of the spec
    steady_heap()
    with held_stderr():  # transformers' and PEFT's bars and warnings are not ours to print
        tokenizer = AutoTokenizer.from_pretrained(merged_dir, trust_remote_code=remote)
    heldout = heldout_text(spec.heldout_text)
    sequences = heldout_sequences(tokenizer, heldout, probes.PROBE)
    probe_ids = [tokenizer(prompt).input_ids for prompt in PROBE_PROMPTS]
    vocab_size, grown = _vocabulary(base_dir, merged_dir)
    key = None
    # a base resized for added tokens gets new rows transformers draws at random: its
    # figures are this run's alone, neither read from the cache nor kept in it
    if base_fingerprint is not None and not grown:
        key = base_key(base_fingerprint, sequences, probe_ids, plan.dtype, plan.device)
    base_side = _base_side(
        remote, base_dir, adapter_dir, merged_dir, vocab_size, plan, tokenizer, sequences, key,
        report,
    )  # fmt: skip
    reference, base_perplexity, cached = yield from base_side
    release_memory()
    if reference.adapter_effect < 1e-4:
        yield report.log(
            "the adapter changes no logits on the probe prompts: was it trained?", "warning"
        )

    yield report.log(f"loading the merged model on {plan.device}")
    merged = yield from load_reporting(
        report, "loading the merged model", merged_dir, plan, trust_remote_code=remote
    )
    compared = merge_equivalence(merged, tokenizer, reference)
    equivalence = yield from steps(
        report, "merge equivalence", "prompts", len(PROBE_PROMPTS), compared
    )
    equivalence_facts = _equivalence_facts(spec, equivalence)
    merged_perplexity, kept = yield from merged_pass(merged, sequences, keep_reference, report)
    perplexity_facts = judge_perplexity(
        spec, heldout.name, sequences, base_perplexity, merged_perplexity
    )

    smoke = yield from smoke_tests(merged, tokenizer, spec, report)
    reference = yield from keep(merged, tokenizer, plan, keep_reference, report, kept)
    return EvaluateFacts(
        device=plan.device,
        equivalence=equivalence_facts,
        perplexity=perplexity_facts,
        base_figures=None if key is None else BaseFiguresFacts(key=key.digest, cached=cached),
        smoke=smoke,
        reference=reference,
    )


def smoke_tests(
    merged, tokenizer, spec: EvalSpec, report: Reporter
) -> Generator[Event, None, list[SmokeFacts]]:
    """The chat smoke test on each prompt; the first that fails is a one-line error."""
    from release.evaluate.sanity import SMOKE_PROMPTS, chat_smoke

    prompts = SMOKE_PROMPTS if spec.prompts is None else spec.prompts
    smoke = []
    for index, prompt in enumerate(prompts):
        what = f"chat {index + 1}/{len(prompts)}: {prompt[:40]}"
        answer = chat_smoke(merged, tokenizer, prompt, max_new_tokens=spec.max_new_tokens)
        result = yield from steps(report, what, "tokens", spec.max_new_tokens, answer)
        smoke.append(SmokeFacts.model_validate(result.to_facts()))
        if not result.passed:
            raise WorkError(
                f"chat smoke test failed on {prompt!r}: {'; '.join(result.problems)} "
                f"(answer: {result.output[:80]!r})",
                hint="check the chat template and the tokenizer files of the merged model",
            )
    return smoke


def merged_pass(
    merged, sequences: list[list[int]], target: ReferenceTarget | None, report: Reporter
) -> Generator[Event, None, tuple[float, SequenceSet | None]]:
    """The merged model's perplexity on the held-out text, and, where ``target`` keeps a
    reference with the text's chunks, their distributions taken from the same forward
    passes (the text is read once: at 4B on a CPU a pass is minutes)."""
    from release.evaluate.sanity import perplexity

    probe = probes.PROBE
    parts: list[SequenceSet] = []

    def keep_chunk(ids, logits) -> None:
        parts.append(SequenceSet.of([ids], [logits.cpu().numpy()], probe.heldout_top_k))

    keeps = target is not None and target.heldout is not None and whole_chunks(sequences, probe)
    passes = perplexity(merged, sequences, keep_chunk if keeps else None)
    value = yield from perplexity_pass(report, "perplexity: merged", passes, sequences)
    return value, SequenceSet.joined(parts) if parts else None


def keep(
    merged,
    tokenizer,
    plan: LoadPlan,
    target: ReferenceTarget | None,
    report: Reporter,
    kept: SequenceSet | None = None,
) -> Generator[Event, None, ReferenceFacts | None]:
    """The merged model's reference for the GGUF checks, kept where ``target`` says
    (``kept``: its held-out set, from ``merged_pass``)."""
    if target is None:
        return None
    writing = target.write(merged, tokenizer, plan.dtype, plan.device, kept)
    what = "keeping the merged model's reference for the GGUF checks"
    return (yield from steps(report, what, "sequences", None, writing))


def _vocabulary(base_dir: Path, merged_dir: Path) -> tuple[int, bool]:
    """The merged model's vocabulary size, and whether it is larger than the base's (the
    adapter added tokens: the base is resized to it before PEFT loads the adapter)."""
    from release.checkpoint.config import read_config, text_config

    merged = int(text_config(read_config(merged_dir)).get("vocab_size") or 0)
    return merged, merged > int(text_config(read_config(base_dir)).get("vocab_size") or 0)


def _base_side(
    remote: bool,
    base_dir: Path,
    adapter_dir: Path,
    merged_dir: Path,
    vocab_size: int,
    plan: LoadPlan,
    tokenizer,
    sequences: list[list[int]],
    key: BaseKey | None,
    report: Reporter,
) -> Generator[Event, None, tuple[ProbeReference, float, bool]]:
    """Load base + adapter; the base's perplexity and probe logits (read from the cache
    under ``key``, else computed and kept there); what the equivalence check compares
    against; and let the model go on return. Returns the reference, the base's perplexity
    and whether it was cached."""
    import torch
    from peft import PeftModel

    from release.evaluate.sanity import (
        PROBE_PROMPTS,
        perplexity,
        probe_reference,
        probe_reference_steps,
    )

    figures = read_figures(key) if key is not None else None
    cached = figures is not None
    yield report.log(f"loading the base with the adapter on {plan.device}")
    base = yield from load_reporting(
        report, "loading the base", base_dir, plan, trust_remote_code=remote
    )
    with held_stderr():
        if base.get_input_embeddings().num_embeddings < vocab_size:
            base.resize_token_embeddings(vocab_size)  # added tokens: as PEFT's users load it
        with_adapter = PeftModel.from_pretrained(base, adapter_dir).eval()
    if figures is not None:
        yield report.log(
            f"the base's perplexity ({figures.perplexity:.2f}) and probe logits: cached by an "
            f"earlier eval of this base (key {key.digest[:16]}…), not computed again"
        )
    else:
        with with_adapter.disable_adapter():  # the base alone
            passes = perplexity(with_adapter, sequences)
            base_perplexity = yield from perplexity_pass(
                report, "perplexity: base", passes, sequences
            )
            bare = yield from base_probe_logits(with_adapter, tokenizer, report)
        figures = BaseFigures(base_perplexity, bare)
        if key is not None:
            write_figures(key, figures)
    stored = getattr(torch, checkpoint_dtype(merged_dir))
    merging = probe_reference(  # merges with_adapter
        with_adapter, tokenizer, PROBE_PROMPTS, stored, figures.probe_logits
    )
    what = "probe prompts: base + adapter, PEFT's merge"
    total = probe_reference_steps(PROBE_PROMPTS)
    reference = yield from steps(report, what, "steps", total, merging)
    return reference, figures.perplexity, cached


def base_probe_logits(base, tokenizer, report: Reporter) -> Generator[Event, None, list]:
    """The base's logits on the probe prompts (on the CPU), a progress event a prompt
    (each is a forward pass: seconds at 4B on a CPU)."""
    from release.evaluate.sanity import PROBE_PROMPTS, next_token_logits

    def each() -> Generator[int, None, list]:
        bare = []
        for logits in next_token_logits(base, tokenizer, PROBE_PROMPTS):
            bare.append(logits.cpu())
            yield len(bare)
        return bare

    return (yield from steps(report, "probe prompts: base", "prompts", len(PROBE_PROMPTS), each()))


def perplexity_pass(
    report: Reporter, what: str, passes: Perplexity, sequences: list[list[int]]
) -> Generator[Event, None, float]:
    """Run a perplexity pass, reporting after each sequence the tokens scored, the rate
    and the time left, and every few seconds inside one (a 512-token chunk through a 4B
    model on a CPU is 40 s); returns the perplexity."""
    from release.evaluate.sanity import scored_tokens

    total = scored_tokens(sequences)
    started = time.monotonic()
    done = 0
    yield report.progress(0, total, "tokens", what)

    def tick(seconds: float):
        report.check_cancelled()
        return report.progress(done, total, "tokens", f"{what}: {seconds:.0f} s into a chunk")

    while True:
        going, value = yield from ticking(lambda: _advance(passes), tick)
        if not going:
            return value
        done = int(value)
        rate = done / max(time.monotonic() - started, 1e-9)
        left = (total - done) / rate
        yield report.progress(
            done, total, "tokens", f"{what}: {rate:.0f} tokens/s, about {left:.0f} s left"
        )
        report.check_cancelled()


def steps(
    report: Reporter,
    what: str,
    unit: str,
    total: int | None,
    work: Generator[int | tuple[int, int], None, Done],
) -> Generator[Event, None, Done]:
    """Run ``work``, a generator that yields how many of ``total`` it has done (prompts,
    generated tokens, sequences), or (done, total) where only it knows the total,
    reporting each, and every few seconds inside a step (one batched forward pass of the
    probe prompts through a 4B model on a CPU is 13 s); returns what it returns."""
    done = 0
    yield report.progress(done, total, unit, what)

    def tick(seconds: float):
        report.check_cancelled()
        return report.progress(done, total, unit, f"{what}: {seconds:.0f} s into a step")

    while True:
        going, item = yield from ticking(lambda: _advance(work), tick)
        if not going:
            return item
        done, total = item if isinstance(item, tuple) else (item, total)
        yield report.progress(done, total, unit, what)
        report.check_cancelled()


def _advance(work: Generator[Step, None, Done]) -> tuple[bool, Step | Done]:
    """(True, what ``work`` yields next) or (False, what it returns), its library's bars
    and warnings held (generate() warns of its settings; PEFT of its merge)."""
    with held_stderr():
        try:
            return True, next(work)
        except StopIteration as finished:
            return False, finished.value


def judge_perplexity(
    spec: EvalSpec,
    name: str,
    sequences: list[list[int]],
    base: float,
    merged: float,
    changed_by: str = "the adapter",
) -> PerplexityFacts:
    """The perplexity's facts, or the one-line error when the merged model is much worse
    than its base."""
    ratio = merged / base
    if ratio > spec.max_perplexity_ratio:
        raise WorkError(
            f"{changed_by} makes the base much worse on held-out text: perplexity "
            f"{base:.2f} → {merged:.2f} (×{ratio:.2f}, limit ×{spec.max_perplexity_ratio}); "
            f"a sign of a wrong base or a broken run",
            hint="check base against the model the adapter was trained on",
        )
    return PerplexityFacts(
        text=name,
        tokens=sum(len(ids) for ids in sequences),
        base=round(base, 4),
        merged=round(merged, 4),
        ratio=round(ratio, 4),
        max_ratio=spec.max_perplexity_ratio,
        passed=True,
    )


def _equivalence_facts(spec: EvalSpec, equivalence) -> EquivalenceFacts:
    """The equivalence's facts, or the one-line error when the merge is not base + adapter."""
    equivalent = (
        equivalence.top1_agreement >= spec.min_top1_agreement
        and equivalence.relative_error <= spec.max_merge_error
    )
    if not equivalent:
        raise WorkError(
            f"the merged model is not base + adapter: top-1 agreement "
            f"{equivalence.top1_agreement:.1%} (min {spec.min_top1_agreement:.0%}), mean "
            f"logit error {equivalence.relative_error:.0%} of the adapter's effect (max "
            f"{spec.max_merge_error:.0%}), against PEFT's load of the same files",
            hint="likely causes: an init_lora_weights in adapter_config.json that moves the "
            "base (PiSSA, OLoRA, CorDA: convert it with PEFT's save_pretrained("
            "path_initial_model_for_weight_conversion=...)), base files changed since the "
            "merge (another revision: rerun with --force merge), a quantized base",
        )
    return EquivalenceFacts(
        **{key: round(value, 6) for key, value in asdict(equivalence).items()},
        relative_error=round(equivalence.relative_error, 6),
        min_top1_agreement=spec.min_top1_agreement,
        max_relative_error=spec.max_merge_error,
        passed=True,
    )
