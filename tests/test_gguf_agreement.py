"""How GGUF logits are compared with the merged model's: near-ties do not count."""

from __future__ import annotations

import numpy as np
import torch

from release.gguf.agreement import CONFIDENT_GAP, compare


def test_a_flipped_near_tie_lowers_top1_but_not_confident_agreement():
    reference = np.array([[5.0, 1.0, 0.0], [2.0, 2.0 - CONFIDENT_GAP / 4, 0.0]], np.float32)
    candidate = np.array([[5.0, 1.0, 0.0], [2.0, 2.1, 0.0]], np.float32)  # the tie flips
    result = compare([reference], [candidate])
    assert result.top1_agreement == 0.5
    assert result.confident_top1_agreement == 1.0
    assert result.max_abs_diff == round(2.1 - (2.0 - CONFIDENT_GAP / 4), 4)


def test_a_flipped_confident_position_counts():
    reference = np.array([[3.0, 0.0], [3.0, 0.0]], np.float32)
    candidate = np.array([[3.0, 0.0], [0.0, 3.0]], np.float32)
    assert compare([reference], [candidate]).confident_top1_agreement == 0.5


def test_mean_kl_matches_torch():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(7, 50)).astype(np.float32)
    candidate = reference + rng.normal(scale=0.3, size=(7, 50)).astype(np.float32)
    expected = torch.nn.functional.kl_div(
        torch.log_softmax(torch.tensor(candidate, dtype=torch.float64), -1),
        torch.log_softmax(torch.tensor(reference, dtype=torch.float64), -1),
        log_target=True,
        reduction="batchmean",
    ).item()
    assert abs(compare([reference], [candidate]).mean_kl - expected) < 1e-6
    assert compare([reference], [reference]).mean_kl == 0.0
