"""An adapter of a resized vocabulary: added tokens, and the embeddings that hold them.

Users add tokens (chat, tool calls) before training: ``resize_token_embeddings`` grows
the input embedding and the output head by the new rows, and PEFT saves both whole
(``modules_to_save``). PEFT's users load such an adapter onto the base resized the same
way; the merge writes the adapter's copies, which hold every row, old and new, so the
result is the same. Intake checks that every vocabulary-sized tensor of the base grows
alike (a head left at the old size would not run).

Where the base ties its head to the input embedding (no head tensor in the checkpoint),
an adapter that saved a head copy equal to its embedding copy keeps them tied; one that
trained them apart gets its own head tensor, and the merged config unties them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from release.checkpoint.safetensors import TensorInfo, read_array
from release.merge import lora

HEAD = "lm_head.weight"
"""The output head's parameter (a causal LM's), which a tying base has no tensor of."""


@dataclass(frozen=True)
class TiedHead:
    """A head copy in an adapter whose base ties its head: kept tied, or untied."""

    parameter: str
    untied: bool


def tied_head(
    edits: dict[str, lora.ModuleEdit], base: dict[str, TensorInfo], adapter: dict[str, TensorInfo]
) -> TiedHead | None:
    """The adapter's head copy (or trainable tokens) where the base checkpoint has no
    head (it ties it to the input embedding): untied unless the embedding's are the
    same bytes."""
    head = next(
        (p for p, e in edits.items() if p.endswith(HEAD) and (e.replacement or e.tokens)), None
    )
    if head is None or any(name.endswith(HEAD) for name in base):
        return None
    embedding = next((e for p, e in edits.items() if p.endswith("embed_tokens.weight")), None)
    same = embedding is not None and all(
        (mine is None) == (theirs is None)
        and (mine is None or _same_bytes(adapter[mine], adapter[theirs or ""]))
        for mine, theirs in (
            (edits[head].replacement, embedding.replacement),
            (edits[head].tokens, embedding.tokens),
        )
    )
    return TiedHead(head, untied=not same)


def _same_bytes(one: TensorInfo, other: TensorInfo) -> bool:
    if (one.dtype, one.shape) != (other.dtype, other.shape):
        return False
    with open(one.file, "rb") as first, open(other.file, "rb") as second:
        return bool(np.array_equal(read_array(first, one), read_array(second, other)))


def grows(base_shape: tuple[int, ...], copy_shape: tuple[int, ...], vocab_size: int) -> bool:
    """Whether a replacement of ``copy_shape`` is a vocabulary-sized base tensor grown
    by added tokens: more rows, the same width."""
    return (
        len(base_shape) == 2
        and base_shape[0] == vocab_size
        and copy_shape[1:] == base_shape[1:]
        and copy_shape[0] > base_shape[0]
    )
