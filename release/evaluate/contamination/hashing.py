"""64-bit hashes of many texts' spans at once, in numpy: the speed of the check.

A batch of texts (already in their normal form, so without newlines) is joined by
newlines and read as one array of code points ``c``. With an odd base ``B`` (invertible
modulo 2**64) and ``Q[k] = sum(c[j] * B**-j for j < k)`` (one cumulative sum), the
polynomial hash of any span ``c[a:b]`` is ``B**(b-1) * (Q[b] - Q[a])`` (plus its length):
every window of every text is hashed by a few array operations, whatever its length.
Arithmetic wraps modulo 2**64, as numpy's uint64 does.

- character n-grams: every window of ``n`` code points inside one text;
- word n-grams: the span from the start of word ``i`` to the end of word ``i + n - 1``
  inside one text, words being what lies between single spaces (``normalize``'s forms);
- whole texts: the span of each text.

Equal spans hash equal; unequal spans collide with a chance of about 2**-64 per pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_BASE = np.uint64(0x100000001B3)  # odd: invertible modulo 2**64
_BASE_INVERSE = np.uint64(pow(0x100000001B3, -1, 2**64))
_NEWLINE, _SPACE = 10, 32


@dataclass(frozen=True)
class Batch:
    """Texts as one array of code points, and where each text starts and ends in it."""

    starts: np.ndarray
    ends: np.ndarray
    lengths: np.ndarray
    _prefix: np.ndarray
    _powers: np.ndarray
    _spaces: np.ndarray
    _newlines: np.ndarray
    _room: np.ndarray

    @classmethod
    def of(cls, texts: Sequence[str]) -> Batch:
        joined = "\n".join(texts)
        points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
        newlines = points == _NEWLINE
        spaces = (points == _SPACE) | newlines
        codes = points.astype(np.uint64)
        lengths = np.fromiter((len(text) for text in texts), dtype=np.int64, count=len(texts))
        ends = np.cumsum(lengths + 1) - 1
        starts = ends - lengths
        powers, inverse = _powers(len(codes) + 1)
        prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        with np.errstate(over="ignore"):
            np.multiply(codes, inverse[: len(codes)], out=codes)
            np.cumsum(codes, out=prefix[1:])
        room = np.repeat(ends.astype(np.int32), lengths + 1)[: len(codes)]
        room -= np.arange(len(codes), dtype=np.int32)  # code points to the text's end
        return cls(starts, ends, lengths, prefix, powers, spaces, newlines, room)

    def __len__(self) -> int:
        return len(self.starts)

    def span_hashes(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The hashes of the spans ``[a, b)`` of the joined texts (equal-length arrays)."""
        with np.errstate(over="ignore"):
            value = self._powers[b - 1] * (self._prefix[b] - self._prefix[a])
            return value + (b - a).astype(np.uint64)

    def text_of(self, position: np.ndarray) -> np.ndarray:
        """Which text each code-point position lies in."""
        return np.searchsorted(self.ends, position, side="left")

    def whole(self) -> np.ndarray:
        """One hash per text (an empty text hashes to 0)."""
        hashes = np.zeros(len(self), dtype=np.uint64)
        full = self.ends > self.starts
        hashes[full] = self.span_hashes(self.starts[full], self.ends[full])
        return hashes

    def char_ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The hashes of every ``n`` code points inside one text, and their start."""
        size = len(self._prefix) - 1
        if size < n:
            return np.zeros(0, np.uint64), np.zeros(0, np.int64)
        inside = np.flatnonzero(self._room[: size - n + 1] >= n)
        with np.errstate(over="ignore"):
            value = self._powers[n - 1 : size] * (self._prefix[n:] - self._prefix[: size - n + 1])
            value = value[inside]
            value += np.uint64(n)
        return value, inside

    def words(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where each word starts and ends (words lie between single spaces), and which
        text it is in."""
        cuts = np.flatnonzero(self._spaces)
        word_starts = np.concatenate(([0], cuts + 1))
        word_ends = np.concatenate((cuts, [len(self._prefix) - 1]))
        text = np.zeros(len(word_starts), dtype=np.int64)
        np.cumsum(self._newlines[cuts], out=text[1:])
        return word_starts, word_ends, text

    def word_ngrams(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The hashes of every ``n`` consecutive words inside one text, with the start
        and end of each span."""
        word_starts, word_ends, text = self.words()
        if len(word_starts) < n:
            empty = np.zeros(0, np.int64)
            return np.zeros(0, np.uint64), empty, empty
        inside = np.flatnonzero(text[: len(text) - n + 1] == text[n - 1 :])
        a, b = word_starts[inside], word_ends[inside + n - 1]
        return self.span_hashes(a, b), a, b


_POWERS = np.ones(1, dtype=np.uint64), np.ones(1, dtype=np.uint64)


def _powers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``B**k`` and ``B**-k`` for k below ``size`` (at least), kept for the next batch."""
    global _POWERS
    if len(_POWERS[0]) < size:
        size = max(size, 2 * len(_POWERS[0]))
        powers = np.full(size, _BASE, dtype=np.uint64)
        inverse = np.full(size, _BASE_INVERSE, dtype=np.uint64)
        powers[0] = inverse[0] = 1
        with np.errstate(over="ignore"):
            _POWERS = np.cumprod(powers), np.cumprod(inverse)
    return _POWERS
