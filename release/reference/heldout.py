"""The held-out text, cut as llama.cpp's ``llama-perplexity`` cuts it.

What a quant loses is measured on a real text (``eval.heldout_text``, or the shipped
multilingual sample) the way quant makers measure it with ``llama-perplexity
--kl-divergence``: the text tokenized whole (with the tokenizer's special tokens),
cut into chunks of ``n_ctx`` tokens (the tail that fills no chunk is dropped), the
first token of each chunk replaced by BOS where the tokenizer adds one, and the second
half of each chunk scored: the distributions at positions ``n_ctx/2 … n_ctx-2``, each
predicting the token after it. The merged model's distributions on these chunks are
kept in its reference (``store``, set ``heldout``); the GGUF stage runs the same chunks
through llama.cpp (``release.gguf.quality``).

The same chunks are what the evaluate stage's perplexity runs (``sequences``): the base
and the merged model each read the text once, and the merged model's pass keeps the
reference's distributions as it goes. The text is read up to ``HELDOUT_TOKENS``, so a
long ``eval.heldout_text`` costs a bounded time (at 4B on a CPU, a token is about a
third of a second per model).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from release.core.errors import WorkError

CHUNK_TOKENS = 512
"""``n_ctx``: llama-perplexity's default context, which published KLD tables use."""
HELDOUT_TOKENS = 4096
"""The held-out text's tokens any model reads (eight chunks), at most."""
CPU_PARAMETER_TOKENS = 4_500 * 10**9
"""What one model reads of the held-out text on the CPU, in parameters x tokens: in
float32 on a 2-core CPU a 3.9B model takes 83 ms a token (README "Runners"), so 4,096
tokens through the base and the merged model would be 11 minutes. Models of up to 1.1B
parameters read them all, the 3.8B bench model two chunks, 8B and larger one."""
TOKENS_VARIABLE = "MODEL_RELEASE_HELDOUT_TOKENS"
"""Fewer tokens for every model, on any device, said on the card like the CPU's limit: a
quicker eval (the test suite sets 1,024: eight chunks of every tiny release would double
its time)."""
SET = "heldout"
"""The chunks' set in the reference file."""
BUILTIN_NAME = "model-release heldout.txt (multilingual sample)"


@dataclass(frozen=True)
class HeldoutText:
    name: str
    """What the card calls it: the file's name, or the shipped sample's."""
    text: str
    limit: int = HELDOUT_TOKENS
    """The tokens a model reads of it, at most."""
    limited: str | None = None
    """Why ``limit`` is under ``HELDOUT_TOKENS``, as the card says it; None where it is not."""

    def read_by(self, parameters: int, gpus: int) -> HeldoutText:
        """The text as a model of ``parameters`` reads it: on a GPU, or small enough,
        ``HELDOUT_TOKENS``; on the CPU a larger model reads the whole chunks that fit
        ``CPU_PARAMETER_TOKENS`` (one at least)."""
        limit, why = HELDOUT_TOKENS, None
        if not gpus and parameters * HELDOUT_TOKENS > CPU_PARAMETER_TOKENS:
            limit = max(1, CPU_PARAMETER_TOKENS // (parameters * CHUNK_TOKENS)) * CHUNK_TOKENS
            why = (
                f"at most {limit:,} tokens read: a {parameters / 1e9:.3g}B-parameter model "
                f"on the CPU (on a GPU, {HELDOUT_TOKENS:,})"
            )
        asked = _asked_tokens()
        if asked is not None and asked < limit:
            limit, why = asked, f"at most {asked:,} tokens read: {TOKENS_VARIABLE}={asked}"
        return self if why is None else replace(self, limit=limit, limited=why)


def _asked_tokens() -> int | None:
    """``TOKENS_VARIABLE``'s tokens, None where it is not set."""
    value = os.environ.get(TOKENS_VARIABLE, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 2:
        raise WorkError(
            f"{TOKENS_VARIABLE}={value!r} is not a number of tokens",
            hint="unset it, or give the held-out tokens a model reads at most (e.g. 1024)",
        )
    return int(value)


def heldout_text(path: Path | None) -> HeldoutText:
    """The release's held-out text (``eval.heldout_text``), or the shipped sample."""
    if path is not None:
        return HeldoutText(path.name, path.read_text(encoding="utf-8"))
    text = resources.files("release").joinpath("data/heldout.txt").read_text("utf-8")
    return HeldoutText(BUILTIN_NAME, text)


def chunks(ids: list[int], bos: int | None, n_ctx: int = CHUNK_TOKENS) -> list[list[int]]:
    """``ids`` (the whole text's tokens) in chunks of ``n_ctx``, each starting with
    ``bos`` where the tokenizer adds one (None: the tokens as they are)."""
    cut = [ids[start : start + n_ctx] for start in range(0, len(ids) - n_ctx + 1, n_ctx)]
    return [[bos, *chunk[1:]] if bos is not None else chunk for chunk in cut]


def sequences(
    ids: list[int], bos: int | None, n_ctx: int = CHUNK_TOKENS, limit: int = HELDOUT_TOKENS
) -> list[list[int]]:
    """What each model reads of the held-out text, one forward pass per sequence: its
    first ``limit`` tokens in ``chunks``, or, shorter than one chunk, the text whole (its
    perplexity is measured; no quant's KL divergence is, which takes whole chunks)."""
    head = ids[:limit]
    return chunks(head, bos, n_ctx) or ([head] if len(head) > 1 else [])


def scored(n_ctx: int) -> slice:
    """The positions of a chunk whose next-token distribution is scored."""
    return slice(n_ctx // 2, n_ctx - 1)


def tokenizer_bos(tokenizer) -> int | None:
    """The BOS id a transformers tokenizer puts before a text, None where it adds none."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return None
    return bos if tokenizer.encode("x")[:1] == [bos] else None
