"""What a quant loses against the merged model, on the held-out text, as llama-perplexity
measures it.

``llama-perplexity --kl-divergence`` (what quant makers publish: unsloth, Artefact2's
tables) runs the text in chunks and scores the second half of each
(``release.reference.heldout``); at each scored position it reports the KL divergence
KL(P_merged || P_quant) in nats, and over all of them the mean, median, 99th
percentile and maximum, the share of positions where both pick the same top token, and
the perplexity of the quant and of the base (here: the merged model). This module
computes the same from the merged model's reference (its top k tokens' logits and its
log-sum-exp at each position: ``release.reference.store``) and llama.cpp's run of the
same chunks (``llama_cpp_process.HeldoutRun``).

The KL divergence sums ``p (log p - log q)`` over the reference's top k tokens exactly;
the rest of the vocabulary (which the reference does not keep) enters as one outcome
(its mass under each model) plus the spread of the quant's noise over it
(``tail_kl``). The one outcome alone reads low (a coarser partition: on SmolLM2 q8_0,
0.84 of the full-vocabulary KLD at k = 64, 0.93 at 256, 0.97 at 1024); with the spread
term, measured against llama-perplexity's sum from the same llama.cpp logits (SmolLM2
q4_k_m), k = 256 reads the mean 0.6% low and the median 1.3% low, k = 1024 within 0.13%.

Where llama-perplexity's arithmetic departs from the plain definition, ours follows it:
its base file keeps each position's log-probabilities down to 16 nats below the top
token's (``BASE_RANGE``), the rest at that floor, so the base's perplexity reads a
next token further down at the floor (one of 510 SmolLM2 tokens, 1.2% of its
perplexity), and its KL divergence sums over the tokens whose base log-probability is
above -16 (``KLD_CUT``). README "What each quant costs" has the figures against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from release.gguf.llama_cpp_process import HeldoutRun
from release.reference.heldout import scored
from release.reference.store import SequenceSet

BASE_RANGE = 16.0
"""Nats below a position's top token down to which llama-perplexity's base file keeps
log-probabilities (its 16-bit ``log_softmax``); a token further down reads at the floor."""
KLD_CUT = -16.0
"""The base log-probability above which a token enters llama-perplexity's KL divergence."""


@dataclass(frozen=True)
class QuantQuality:
    tokens: int
    """Scored positions."""
    kld_mean: float
    kld_median: float
    kld_p99: float
    kld_max: float
    same_top1: float
    """Share of scored positions where the quant's top token is the merged model's."""
    ppl: float
    """The quant's perplexity on the scored tokens."""
    ppl_reference: float
    """The merged model's, on the same tokens."""

    @property
    def ppl_ratio(self) -> float:
        return self.ppl / self.ppl_reference


@dataclass(frozen=True)
class ScoredReference:
    """The reference at the held-out chunks' scored positions, with what every quant's
    comparison reads of it (worked out once per stage)."""

    top_ids: np.ndarray
    log_p: np.ndarray
    """float64, positions x k: the kept tokens' log-probabilities."""
    p: np.ndarray
    p_rest: np.ndarray
    nll: np.ndarray
    """float64: the merged model's negative log-likelihood of the next token, at most
    ``BASE_RANGE`` past the top token's (as llama-perplexity reads its base)."""

    @classmethod
    def of(cls, heldout: SequenceSet) -> ScoredReference:
        rows = [scored(int(length)) for length in heldout.lengths]

        def pick(array: np.ndarray) -> np.ndarray:
            return np.concatenate(
                [part[r] for part, r in zip(heldout.split(array), rows, strict=False)]
            )

        lse = pick(heldout.logsumexp)
        log_p = pick(heldout.top_logits).astype(np.float64) - lse[:, None]
        p = np.exp(log_p)
        nll = lse - pick(heldout.target_logits).astype(np.float64)
        nll = np.minimum(nll, BASE_RANGE - log_p[:, 0])
        rest = np.clip(1.0 - p.sum(-1), 0.0, 1.0)
        return cls(pick(heldout.top_ids), log_p, p, rest, nll)


def tail_kl(reference: ScoredReference, run: HeldoutRun, log_q: np.ndarray) -> np.ndarray:
    """Each position's KL over the tokens past the reference's top k: the tail as one
    outcome (``p_rest log(p_rest / q_rest)``, exact), plus what the tail's shape adds,
    ``p_rest * s^2 / 2``, where ``s^2`` is the variance of ``log q - log p`` over the
    kept tokens (for a log-ratio spread like that over the tail, KL(p_tail || q_tail)
    is ``s^2 / 2``: the quant's noise on a logit is about the same whatever the token's
    rank). None where the last kept token is below ``KLD_CUT``: so is the rest."""
    log_q_rest = run.rest_logsumexp - run.logsumexp
    tail = (reference.p_rest > 0) & np.isfinite(log_q_rest) & (reference.log_p[:, -1] > KLD_CUT)
    spread = (log_q - reference.log_p).var(-1)
    p_rest = reference.p_rest[tail]
    found = np.zeros(len(log_q))
    found[tail] = p_rest * (np.log(p_rest) - log_q_rest[tail] + spread[tail] / 2)
    return found


def quant_quality(reference: ScoredReference, run: HeldoutRun) -> QuantQuality:
    """The figures of one quant's run against the reference."""
    log_q = run.top_logits.astype(np.float64) - run.logsumexp[:, None]
    summed = reference.log_p > KLD_CUT
    per_token = np.where(summed, reference.p * (reference.log_p - log_q), 0.0).sum(-1)
    per_token += tail_kl(reference, run, log_q)
    nll = run.logsumexp - run.target_logits.astype(np.float64)
    return QuantQuality(
        tokens=int(per_token.size),
        kld_mean=float(per_token.mean()),
        kld_median=float(np.median(per_token)),
        kld_p99=float(np.percentile(per_token, 99)),
        kld_max=float(per_token.max()),
        same_top1=float((run.argmax == reference.top_ids[:, 0]).mean()),
        ppl=float(np.exp(nll.mean())),
        ppl_reference=float(np.exp(reference.nll.mean())),
    )
