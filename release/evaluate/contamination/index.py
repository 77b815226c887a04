"""The training side's n-grams, hashed: sorted runs of distinct 64-bit hashes.

Hashes arrive batch by batch in the one streaming pass over the training data and wait
in a buffer; a full buffer is sorted and its duplicates dropped, making a run. Runs stay
in memory while all of them together fit ``cap_bytes`` (8 bytes a distinct n-gram, so
memory grows with the distinct n-grams, not the data); past the cap each new run is
written to ``spill_dir`` and read back through a memory map, so a training set of any
size is checked in bounded memory. A lookup (``contains``) is a binary search in each
run.

The test side is known before the training pass starts, and is small: ``TestFilter``
keeps a byte map of its n-grams' hashes, and only training n-grams whose byte is set (the
test n-grams' own, and about 1 in 16 others) enter the index. It can only drop n-grams no
test text has, so the verdicts are the same, and the index holds a few million hashes
where it would hold hundreds of millions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BUFFER_HASHES = 16_000_000
"""Hashes a buffer holds before it becomes a run (128 MB)."""


class TestFilter:
    """A byte map of the test side's n-gram hashes (their top bits), 16 bytes each."""

    MAX_BYTES = 2**28

    def __init__(self, hashes: np.ndarray) -> None:
        size = min(16 * max(len(hashes), 1), self.MAX_BYTES)
        bits = max(int(size - 1).bit_length(), 4)
        self._shift = np.uint64(64 - bits)
        self._map = np.zeros(2**bits, dtype=np.bool_)
        self._map[hashes >> self._shift] = True

    def keep(self, hashes: np.ndarray) -> np.ndarray:
        """The hashes a test n-gram may equal."""
        return hashes[self._map[hashes >> self._shift]]


class NgramIndex:
    def __init__(self, cap_bytes: int, spill_dir: Path, name: str) -> None:
        self.cap_bytes = cap_bytes
        self.spill_dir = spill_dir
        self.name = name
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self._runs: list[np.ndarray] = []
        self._in_memory = 0
        self.spilled = 0
        """Runs written to disk."""

    def add(self, hashes: np.ndarray) -> None:
        self._buffer.append(hashes)
        self._buffered += len(hashes)
        if self._buffered >= min(BUFFER_HASHES, max(self.cap_bytes // 8, 1)):
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        run = _distinct(np.concatenate(self._buffer))
        self._buffer, self._buffered = [], 0
        if self._in_memory + run.nbytes <= self.cap_bytes:
            self._runs.append(run)
            self._in_memory += run.nbytes
            return
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"{self.name}-{self.spilled:05d}.npy"
        np.save(path, run)
        self._runs.append(np.load(path, mmap_mode="r"))
        self.spilled += 1

    @property
    def hashes(self) -> int:
        """Hashes held (distinct within each run)."""
        self._flush()
        return sum(len(run) for run in self._runs)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """For each of ``hashes``, whether the training data holds it."""
        self._flush()
        order = np.argsort(hashes)
        wanted = hashes[order]  # sorted, the searches walk each run once
        found = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            if len(run):
                at = np.minimum(np.searchsorted(run, wanted), len(run) - 1)
                found[order] |= run[at] == wanted
        return found


def _distinct(hashes: np.ndarray) -> np.ndarray:
    """Sorted, without repeats (np.unique's hash table is far slower on 10**7 uint64s)."""
    hashes.sort()
    if len(hashes) < 2:
        return hashes
    keep = np.empty(len(hashes), dtype=bool)
    keep[0] = True
    np.not_equal(hashes[1:], hashes[:-1], out=keep[1:])
    return hashes[keep]
