"""How GGUF logits are compared with the merged model's reference: near-ties do not
count, and the compact reference (top-k logits and the log-sum-exp) gives the figures
the full logits give, or bounds them."""

from __future__ import annotations

import numpy as np
import torch

from release.gguf.agreement import CONFIDENT_GAP, compare
from release.reference.store import SequenceSet


def _reference(*logits: np.ndarray, k: int = 64) -> SequenceSet:
    """A set of one sequence per array of logits (its token ids do not matter here)."""
    return SequenceSet.of([list(range(len(values))) for values in logits], logits, k)


def _kl(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Mean KL(reference || candidate) by torch, over the whole vocabulary."""
    return torch.nn.functional.kl_div(
        torch.log_softmax(torch.tensor(candidate, dtype=torch.float64), -1),
        torch.log_softmax(torch.tensor(reference, dtype=torch.float64), -1),
        log_target=True,
        reduction="batchmean",
    ).item()


def test_a_flipped_near_tie_lowers_top1_but_not_confident_agreement():
    reference = np.array([[5.0, 1.0, 0.0], [2.0, 2.0 - CONFIDENT_GAP / 4, 0.0]], np.float32)
    candidate = np.array([[5.0, 1.0, 0.0], [2.0, 2.1, 0.0]], np.float32)  # the tie flips
    result = compare(_reference(reference), [candidate])
    assert result.top1_agreement == 0.5
    assert result.confident_top1_agreement == 1.0
    assert result.max_abs_diff == round(2.1 - (2.0 - CONFIDENT_GAP / 4), 4)


def test_a_flipped_confident_position_counts():
    reference = np.array([[3.0, 0.0], [3.0, 0.0]], np.float32)
    candidate = np.array([[3.0, 0.0], [0.0, 3.0]], np.float32)
    assert compare(_reference(reference), [candidate]).confident_top1_agreement == 0.5


def test_mean_kl_matches_torch_when_every_token_is_kept():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(7, 50)).astype(np.float32)
    candidate = reference + rng.normal(scale=0.3, size=(7, 50)).astype(np.float32)
    assert (
        abs(compare(_reference(reference), [candidate]).mean_kl - _kl(reference, candidate)) < 1e-6
    )
    assert compare(_reference(reference), [reference]).mean_kl == 0.0


def test_the_top_k_reference_keeps_top1_exact_and_bounds_the_kl_from_below():
    """A peaked distribution over a large vocabulary, as a trained model's: the top 64
    carry most of the mass. Top-1 and confident top-1 are the full reference's; the KL
    with the tail merged into one outcome is a lower bound, here within 5 % of it; the
    logit difference is the largest over the kept tokens."""
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(40, 5000)).astype(np.float32)
    reference[:, :20] += rng.uniform(8, 14, size=(40, 20)).astype(np.float32)
    candidate = reference + rng.normal(scale=0.2, size=reference.shape).astype(np.float32)
    full = compare(_reference(reference, k=5000), [candidate])
    top = compare(_reference(reference, k=64), [candidate])
    assert (top.top1_agreement, top.confident_top1_agreement) == (
        full.top1_agreement,
        full.confident_top1_agreement,
    )
    assert full.mean_kl == round(_kl(reference, candidate), 6)
    assert 0.95 * full.mean_kl <= top.mean_kl <= full.mean_kl
    assert top.max_abs_diff <= full.max_abs_diff


def test_the_compact_reference_is_argmax_and_log_sum_exp():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5, 300)).astype(np.float32)
    logits[0, [7, 9]] = 10.0  # a tie: the lower id first, as argmax picks
    values = _reference(logits, k=16)
    assert values.top_logits.shape == (5, 16) and values.top_ids.dtype == np.int32
    assert np.array_equal(values.top_ids[:, 0], logits.argmax(-1))
    expected = np.sort(logits, -1)[:, ::-1][:, :16]
    assert np.array_equal(values.top_logits, expected)
    lse = torch.logsumexp(torch.tensor(logits, dtype=torch.float64), -1).numpy()
    assert np.allclose(values.logsumexp, lse, atol=1e-9, rtol=0)
