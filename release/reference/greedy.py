"""Greedy generation in steps a caller can show: a few new tokens per ``generate`` call.

Each call continues the last one's KV cache, so the tokens are those of one call; in
between, the caller reports progress (each token of a 4B model in float32 reads its
15 GB of weights: about a second or more on a CPU, so one call for a whole answer was a
minute or more with no sign of life). The smoke test and the reference's smoke answer
both generate through ``greedy``.
"""

from __future__ import annotations

from collections.abc import Collection, Generator
from functools import partial

from release.core.waiting import ticking

GREEDY_STEP = 8
"""New tokens per ``generate`` call."""


def greedy(
    model, ids, max_new_tokens: int, eos: Collection[int], pad: int | None
) -> Generator[int, None, list[int]]:
    """Greedy continuation of ``ids`` (a 1 x n tensor on the model's device) up to
    ``max_new_tokens`` or an ``eos`` token (kept, last); yields the new tokens so far
    after each step (and every few seconds during one), returns them."""
    import torch

    sequence, cache, new = ids, None, []
    stop = sorted(eos) or None  # None: the model's generation config says
    while len(new) < max_new_tokens and not (new and new[-1] in eos):
        step = partial(
            model.generate,
            input_ids=sequence,
            attention_mask=torch.ones_like(sequence),
            past_key_values=cache,
            max_new_tokens=min(GREEDY_STEP, max_new_tokens - len(new)),
            do_sample=False,
            eos_token_id=stop,
            pad_token_id=pad,
            return_dict_in_generate=True,
        )
        # the count again every few seconds while a step runs: a token of a large model
        # on a CPU can take longer than that (13 s for 8 tokens at 3.8B in float32)
        out = yield from ticking(step, partial(_so_far, len(new)))
        sequence, cache = out.sequences, out.past_key_values
        new = sequence[0, ids.shape[1] :].tolist()
        yield len(new)
    return new


def _so_far(done: int, _seconds: float) -> int:
    """A tick of ``greedy``: the tokens it had before the step that runs."""
    return done


def model_eos(model) -> set[int]:
    """The ids the model's generation config ends an answer at."""
    ids = model.generation_config.eos_token_id
    return set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
