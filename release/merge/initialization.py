"""An adapter's ``init_lora_weights``, as PEFT's own load treats it.

Most initializations only decide where training starts: the saved factors replace them
on load, and the merge is ``W + s * (B @ A)``. Some move the base: PEFT's loader
recomputes them from the base weight and subtracts ``s * (B0 @ A0)`` from it (PiSSA:
the base's top-r singular part; OLoRA: its projection on the first r columns of a QR),
so the adapter's factors apply to that residual. The merge computes the same residual,
one weight at a time, op for op as PEFT does (torch, float32: a float64 SVD picks
another top-r subspace where singular values nearly tie, 8 ulps off PEFT on a tiny
Gemma 4), rounded to the base's dtype as PEFT's load rounds it.
Where PEFT's own recomputation cannot be repeated (a randomized SVD, statistics of the
training data), the adapter is refused, naming PEFT's conversion to a plain LoRA.

The residual comes from LAPACK (an SVD or a QR), which is not one set of bits on every
CPU: the merge of such an adapter is PEFT's on the machine that runs it, and may differ
in last bits on another. A converted adapter (a plain LoRA) has none of this.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from release.core.errors import InputError

MOVES_BASE = ("pissa", "olora")
"""Initializations whose residual the merge computes, as PEFT's load does."""
FLOAT32_COPIES = 6
"""The float32 copies of one weight its residual holds: weight, SVD factors, product."""

_CONVERT = (
    "convert it to a plain LoRA with PEFT: save_pretrained(out, "
    "path_initial_model_for_weight_conversion=<the initial adapter>), and release that"
)
_REFUSED = {
    "pissa_niter_": "its base residual comes from a randomized SVD PEFT's load does not repeat",
    "corda": "its base residual comes from activations of the training data, not in the folder",
    "loftq": "PEFT's load replaces the base by its LoftQ quantization",
}


def label(value: object) -> str | None:
    """``init_lora_weights`` as the card names it (None: PEFT's default)."""
    return None if value is True or value is None else str(value)


def check(value: object, path: Path) -> None:
    """Refuse, in one line, an initialization whose merge PEFT's load cannot repeat."""
    name = label(value)
    for prefix, why in _REFUSED.items():
        if name and name.lower().startswith(prefix):
            hint = _CONVERT
            if prefix == "loftq":
                hint = "merge onto the LoftQ backbone it was trained with: point base at it"
            raise InputError(f"{path}: init_lora_weights={name!r}: {why}", hint=hint)


def moves_base(value: str | None) -> bool:
    return value is not None and value.lower() in MOVES_BASE


def residual(
    weight: np.ndarray, value: str, rank: int, scale: float, fan_in_fan_out: bool
) -> np.ndarray:
    """``W - s * (B0 @ A0)`` for a float32 ``weight``, in float32, computed op for op as
    PEFT's ``pissa_init`` / ``olora_init`` compute it (torch's SVD and QR, float32), so
    that on one machine the residual is PEFT's to the bit."""
    import torch

    with torch.no_grad():
        tensor = torch.from_numpy(weight)
        if value.lower() == "pissa":
            oriented = tensor.T if fan_in_fan_out else tensor
            v, s, uh = torch.linalg.svd(oriented, full_matrices=False)
            vr, sr, uhr = v[:, :rank], s[:rank], uh[:rank]
            sr /= scale
            lora_a = torch.diag(torch.sqrt(sr)) @ uhr
            lora_b = vr @ torch.diag(torch.sqrt(sr))
            moved = oriented - scale * lora_b @ lora_a
            return (moved.T if fan_in_fan_out else moved).contiguous().numpy()
        q, r = torch.linalg.qr(tensor)  # OLoRA, on the weight as stored
        lora_a, lora_b = r[:rank].contiguous(), q[:, :rank].contiguous()
        return (tensor - scale * lora_b @ lora_a).numpy()
