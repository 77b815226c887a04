"""The reference of a loaded transformers model, written to its file (torch).

The evaluate stage calls ``write_reference`` on the merged model it already holds;
``compute`` calls it on a model it loads for the purpose. Token ids come from the
model's own tokenizer (``encode``, with its special tokens, as llama.cpp is asked to
tokenize the same texts); the smoke prompt goes through the chat template where the
tokenizer has one. The logits are taken in float32 from whatever dtype the model runs
in (the probe prompts in one padded pass: ``batched``, the held-out chunks one at a
time), and kept as ``store`` says.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from release.reference import heldout as heldouts
from release.reference import probe as probes
from release.reference.batched import pad_id, padded_logits
from release.reference.facts import REFERENCE_FILE, ReferenceFacts, ReferenceSetFacts
from release.reference.greedy import greedy, model_eos
from release.reference.store import Reference, SequenceSet, save_reference


def smoke_ids(tokenizer, prompt: str) -> list[int]:
    """The smoke prompt's ids: through the chat template where there is one."""
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(prompt)


def heldout_sequences(
    tokenizer, heldout: heldouts.HeldoutText, probe: probes.ProbeSet
) -> list[list[int]]:
    """The held-out text as every model reads it (``heldout.sequences``), in ``tokenizer``'s
    ids: the chunks the reference keeps where the text fills one."""
    whole = tokenizer(heldout.text).input_ids
    bos = heldouts.tokenizer_bos(tokenizer)
    return heldouts.sequences(whole, bos, probe.heldout_chunk, probe.heldout_tokens)


def whole_chunks(sequences: Sequence[Sequence[int]], probe: probes.ProbeSet) -> bool:
    """Whether ``sequences`` are whole chunks, which the reference keeps (a text that
    fills none gives its perplexity but no quant's KL divergence)."""
    return bool(sequences) and all(len(ids) == probe.heldout_chunk for ids in sequences)


def model_reference(
    model,
    tokenizer,
    probe: probes.ProbeSet,
    heldout: heldouts.HeldoutText | None = None,
    kept: SequenceSet | None = None,
) -> Generator[tuple[int, int], None, Reference]:
    """``model``'s distributions on the probe prompts (and, with ``heldout``, on its
    chunks as llama-perplexity cuts them: ``release.reference.heldout``) and its greedy
    smoke answer; yields (sequences done, sequences) as it goes (the smoke answer last, as
    one): a 4B model on a CPU takes minutes here. ``kept``: the held-out set, taken by
    the caller's own pass over the text (the evaluate stage's perplexity), not run again."""
    import torch

    device = model.get_input_embeddings().weight.device
    sequences = [tokenizer.encode(text) for text in probe.prompts]
    smoke = smoke_ids(tokenizer, probe.smoke_prompt)
    pad = pad_id(tokenizer)

    def run(ids: list[int]) -> np.ndarray:
        out = model(input_ids=torch.tensor([ids], device=device)).logits[0]
        return out.float().cpu().numpy()

    chunks = []
    if heldout is not None and kept is None:
        read = heldout_sequences(tokenizer, heldout, probe)
        chunks = read if whole_chunks(read, probe) else []
    total = len(sequences) + len(chunks) + 1
    sets: dict[str, SequenceSet] = {}
    with torch.inference_mode():
        logits = []
        for each in padded_logits(model, sequences, pad):  # one pass: 4.7 s each at 3.8B
            logits.append(each.cpu().numpy())
            yield len(logits), total
        sets[probe.name] = SequenceSet.of(sequences, logits, probe.top_k)
        if kept is not None:
            sets[heldouts.SET] = kept
        elif chunks:  # one chunk's full logits at a time
            parts = []
            for ids in chunks:
                parts.append(SequenceSet.of([ids], [run(ids)], probe.heldout_top_k))
                yield len(sequences) + len(parts), total
            sets[heldouts.SET] = SequenceSet.joined(parts)
        prompt = torch.tensor([smoke], device=device)
        eos = model_eos(model)
        answering = greedy(model, prompt, probe.smoke_tokens, eos, pad)
        while True:  # a step every few tokens: seconds each at 4B on a CPU
            try:
                next(answering)
            except StopIteration as done:
                answer = done.value
                break
            yield total - 1, total
    yield total, total
    return Reference(
        sets=sets,
        vocab_rows=int(logits[0].shape[-1]),
        smoke_ids=smoke,
        smoke_answer_ids=answer,
        smoke_answer=tokenizer.decode(answer, skip_special_tokens=True),
    )


def write_reference(
    model,
    tokenizer,
    folder: Path,
    *,
    model_id: str | None,
    dtype: str,
    device: str,
    heldout: heldouts.HeldoutText | None = None,
    kept: SequenceSet | None = None,
) -> Generator[tuple[int, int], None, ReferenceFacts]:
    """``model``'s reference on ``probes.PROBE`` (and ``heldout``) into ``folder``; its
    record. ``model_id``: the merged model's identity (``facts.model_identity``); ``kept``
    as ``model_reference`` takes it. Yields ``model_reference``'s steps."""
    probe = probes.PROBE
    reference = yield from model_reference(model, tokenizer, probe, heldout, kept)
    path = folder / REFERENCE_FILE
    save_reference(reference, path)
    return ReferenceFacts(
        file=REFERENCE_FILE,
        model=model_id,
        probe=probe.digest,
        dtype=dtype,
        device=device,
        top_k=probe.top_k,
        vocab_rows=reference.vocab_rows,
        sets=[
            ReferenceSetFacts(name=name, sequences=len(values.lengths), positions=values.positions)
            for name, values in reference.sets.items()
        ],
        heldout_text=heldout.name if heldout is not None else None,
        smoke_prompt=probe.smoke_prompt,
        smoke_answer=reference.smoke_answer,
        bytes=path.stat().st_size,
    )


@dataclass(frozen=True)
class ReferenceTarget:
    """Where a stage keeps the merged model's reference, and which merged model it is."""

    folder: Path
    model_id: str | None
    heldout: heldouts.HeldoutText | None = None

    def write(
        self, model, tokenizer, dtype: str, device: str, kept: SequenceSet | None = None
    ) -> Generator[tuple[int, int], None, ReferenceFacts]:
        return write_reference(
            model,
            tokenizer,
            self.folder,
            model_id=self.model_id,
            dtype=dtype,
            device=device,
            heldout=self.heldout,
            kept=kept,
        )
