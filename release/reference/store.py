"""The reference file: the merged model's next-token distributions, compactly, in one
safetensors file that numpy reads (no torch).

A reference holds named sets of token sequences (``SequenceSet``). At each position of
each sequence it keeps the merged model's ``k`` largest logits with their token ids,
largest first, and the log-sum-exp of the logits over the whole vocabulary: so the
kept tokens' log-probabilities are exact (``logit - logsumexp``) and the rest of the
vocabulary is one outcome whose probability is what they leave. That is what the GGUF
checks read of it (``release.gguf.agreement``): the top token and its lead, the logits
of the tokens that carry the mass, and the KL divergence over the kept tokens and the
rest. It also keeps the logit of the token that comes next in the sequence (what a
perplexity reads). A position costs ``8k + 12`` bytes whatever the vocabulary (k = 64:
524 bytes; the full float32 row of a 262k vocabulary is 1 MiB), so a set can hold a
held-out text of thousands of tokens as well as the few hundred positions of the probe.

Tensors, per set ``S``: ``S.lengths`` (int64, one per sequence), ``S.ids`` (int32, the
sequences' token ids end to end), ``S.top_logits`` (float32, positions x k),
``S.top_ids`` (int32, positions x k), ``S.target_logits`` (float32, positions: the
next token's logit, NaN at a sequence's last position), ``S.logsumexp`` (float64,
positions: a float32 one would move every kept log-probability by up to 2e-6, as much
as a KL it measures). The smoke
prompt: ``smoke.prompt_ids`` and ``smoke.answer_ids`` (int32). The header's metadata:
``format``, ``vocab_rows``, ``sets`` (comma-separated names), ``smoke_answer`` (the
answer as the merged model's tokenizer decodes it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = "model-release reference 2"
FIELDS = ("lengths", "ids", "top_logits", "top_ids", "target_logits", "logsumexp")


class ReferenceFileError(ValueError):
    """A reference file that is not one, or not of this format."""


@dataclass(frozen=True)
class SequenceSet:
    """Token sequences and, at each of their positions, the model's next-token
    distribution: top ``k`` logits (largest first) and their ids, and the log-sum-exp."""

    lengths: np.ndarray
    ids: np.ndarray
    top_logits: np.ndarray
    top_ids: np.ndarray
    target_logits: np.ndarray
    """The logit of the token that comes next in the sequence (NaN at its last)."""
    logsumexp: np.ndarray

    @property
    def top_k(self) -> int:
        return int(self.top_logits.shape[1])

    @property
    def positions(self) -> int:
        return int(self.ids.shape[0])

    def sequences(self) -> list[list[int]]:
        return [part.tolist() for part in self.split(self.ids)]

    def split(self, array: np.ndarray) -> list[np.ndarray]:
        """``array``'s rows (one per position) cut into one block per sequence."""
        return np.split(array, np.cumsum(self.lengths)[:-1])

    @classmethod
    def joined(cls, parts: Sequence[SequenceSet]) -> SequenceSet:
        """One set of the sequences of ``parts``, in order."""
        fields = ("lengths", "ids", "top_logits", "top_ids", "target_logits", "logsumexp")
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})

    @classmethod
    def of(cls, sequences: Sequence[Sequence[int]], logits: Iterable[np.ndarray], k: int):
        """The set of ``sequences`` from each one's full logits (positions x vocab),
        taken one at a time (``logits`` may be a generator: one sequence's full logits
        are held at once)."""
        parts, targets = [], []
        for ids, values in zip(sequences, logits, strict=True):
            parts.append(compact(values, k))
            targets.append(_target_logits(ids, values))
        return cls(
            lengths=np.array([len(ids) for ids in sequences], np.int64),
            ids=np.array([i for ids in sequences for i in ids], np.int32),
            top_logits=np.concatenate([part[0] for part in parts]),
            top_ids=np.concatenate([part[1] for part in parts]),
            target_logits=np.concatenate(targets),
            logsumexp=np.concatenate([part[2] for part in parts]),
        )


def _target_logits(ids: Sequence[int], logits: np.ndarray) -> np.ndarray:
    """At each position, the logit of the next token in ``ids`` (NaN at the last)."""
    values = np.full(len(ids), np.nan, np.float32)
    values[:-1] = np.asarray(logits)[np.arange(len(ids) - 1), np.asarray(ids[1:], np.int64)]
    return values


def compact(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``k`` largest logits and their ids, largest first (ties: the lower id,
    as ``argmax`` picks), and its log-sum-exp (float64)."""
    logits = np.asarray(logits, np.float32)
    k = min(k, logits.shape[-1])
    kept = np.argpartition(-logits, k - 1, axis=-1)[:, :k]
    values = np.take_along_axis(logits, kept, -1)
    order = np.lexsort((kept, -values), axis=-1)
    top = logits.max(-1, keepdims=True).astype(np.float64)
    lse = top[:, 0] + np.log(np.exp(logits - top).sum(-1))
    return (
        np.take_along_axis(values, order, -1),
        np.take_along_axis(kept, order, -1).astype(np.int32),
        lse,
    )


@dataclass(frozen=True)
class Reference:
    """What the merged model says: its distributions on each named set, and its greedy
    answer to the smoke prompt."""

    sets: dict[str, SequenceSet]
    vocab_rows: int
    """The model's vocabulary rows (a GGUF may hold padding rows past them)."""
    smoke_ids: list[int]
    smoke_answer_ids: list[int]
    smoke_answer: str


def save_reference(reference: Reference, path: Path) -> None:
    from safetensors.numpy import save_file

    tensors = {
        "smoke.prompt_ids": np.array(reference.smoke_ids, np.int32),
        "smoke.answer_ids": np.array(reference.smoke_answer_ids, np.int32),
    }
    for name, values in reference.sets.items():
        if "." in name or "," in name:
            raise ValueError(f"a reference set's name may not hold '.' or ',': {name!r}")
        for field in FIELDS:
            tensors[f"{name}.{field}"] = np.ascontiguousarray(getattr(values, field))
    about = {
        "format": FORMAT,
        "vocab_rows": str(reference.vocab_rows),
        "sets": ",".join(reference.sets),
        "smoke_answer": reference.smoke_answer,
    }
    # one metadata key: safetensors writes its metadata map in hash order, which changes
    # from process to process, and a rerun must write the same bytes
    save_file(tensors, str(path), metadata={"reference": json.dumps(about, sort_keys=True)})


def load_reference(path: Path) -> Reference:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = json.loads((handle.metadata() or {}).get("reference", "{}"))
            if metadata.get("format") != FORMAT:
                raise ReferenceFileError(f"{path}: not a {FORMAT!r} file")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise ReferenceFileError(f"{path}: {exc}") from None
    sets = {
        name: SequenceSet(**{field: tensors[f"{name}.{field}"] for field in FIELDS})
        for name in metadata["sets"].split(",")
        if name
    }
    return Reference(
        sets=sets,
        vocab_rows=int(metadata["vocab_rows"]),
        smoke_ids=tensors["smoke.prompt_ids"].tolist(),
        smoke_answer_ids=tensors["smoke.answer_ids"].tolist(),
        smoke_answer=metadata["smoke_answer"],
    )
