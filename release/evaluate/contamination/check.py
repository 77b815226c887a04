"""The check: one streaming pass over the training data, then one over the test texts.

The pass over the training data, batch by batch (``BATCH_SEGMENTS`` texts, scanned in
``WORKERS`` processes while this one reads on):

- word and character n-grams are hashed (``hashing``) into one ``NgramIndex`` each (past
  the test side's ``TestFilter``, which drops most n-grams no test text has);
- exact: each training record's hash, and each of its fields' (a chat's messages), is
  looked up among the test texts' (held in memory), so a match knows which record it was;
- substring: an Aho-Corasick automaton of the test texts (pyahocorasick) runs over each
  training text, likewise naming the record.

Then the test texts' n-grams are looked up in the indexes: a document is contaminated by
word n-grams when any of them is in the training data (lm-eval's Janitor's rule), by
character n-grams when at least ``min_overlap`` of them are.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from release.core.events import Event, Reporter
from release.evaluate.contamination.facts import MethodFacts
from release.evaluate.contamination.hashing import Batch
from release.evaluate.contamination.index import NgramIndex, TestFilter
from release.evaluate.contamination.normalize import (
    janitor_test_form,
    janitor_training_form,
    normal_form,
)
from release.evaluate.contamination.training import Segment
from release.spec.schema import ContaminationSpec

BATCH_SEGMENTS = 20_000
WORKERS = min(2, len(os.sched_getaffinity(0)))
"""Processes that normalize and hash the training texts (this one reads them) when
there is more than one batch: the work is Python's, one core a process."""


@dataclass(frozen=True)
class TaskDocument:
    task: str
    doc_id: int
    text: str
    """What the check compares: the task's decontamination query, else its prompt and
    target (``tasks``)."""


@dataclass
class MethodMatches:
    """One method's verdict on each test document, and where the matches lie."""

    flagged: np.ndarray
    """bool per document."""
    overlap: np.ndarray | None = None
    """The share of each document's n-grams found (n-gram methods)."""
    windows: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    """(document, start, end) of each matched n-gram, in the method's normal form."""
    training: dict[int, str] = field(default_factory=dict)
    """document -> the training record it was found in (exact, substring)."""
    forms: list[str] = field(default_factory=list)
    """The documents' texts in the method's normal form (what spans index)."""

    def longest_span(self, document: int) -> str:
        """The longest stretch of the document's text the method matched."""
        text = self.forms[document]
        if self.windows is None:
            return text
        docs, starts, ends = self.windows
        mine = np.flatnonzero(docs == document)
        best, best_length, current = (0, 0), 0, None
        for start, end in sorted(zip(starts[mine].tolist(), ends[mine].tolist(), strict=True)):
            if current is not None and start <= current[1]:
                current = (current[0], max(current[1], end))
            else:
                current = (start, end)
            if current[1] - current[0] > best_length:
                best, best_length = current, current[1] - current[0]
        return text[best[0] : best[1]]


@dataclass
class CheckResult:
    documents: list[TaskDocument]
    matches: dict[str, MethodMatches]
    segments: int
    characters: int
    index_hashes: int
    index_spilled: int


def check_contamination(
    spec: ContaminationSpec,
    methods: Sequence[MethodFacts],
    documents: Sequence[TaskDocument],
    segments: Iterable[Segment],
    spill_dir: Path,
    report: Reporter,
) -> Generator[Event, None, CheckResult]:
    """Compare ``segments`` (the training data) with ``documents`` by ``methods``."""
    forms = [normal_form(doc.text) for doc in documents]
    janitor_forms = [janitor_test_form(doc.text) for doc in documents]
    keys = {method.key for method in methods}
    word_key = next((m.key for m in methods if m.key.startswith("word_")), None)
    char_methods = [m for m in methods if m.key.startswith("char_")]
    # the test side first: its n-grams filter what of the training side is kept
    tested, words = Batch.of(forms), Batch.of(janitor_forms)
    test_grams: dict[str, tuple[Batch, np.ndarray, np.ndarray, np.ndarray]] = {}
    for method in char_methods:
        assert method.n is not None
        hashes, starts = tested.char_ngrams(method.n)
        test_grams[method.key] = (tested, hashes, starts, starts + method.n)
    if word_key is not None:
        test_grams[word_key] = (words, *words.word_ngrams(spec.word_ngram))
    cap = spec.memory_cap // max(1, len(test_grams))
    indexes = {key: NgramIndex(cap, spill_dir, key) for key in test_grams}
    scanner = _Scanner(
        char_ns={m.key: m.n for m in char_methods if m.n is not None},
        word=(word_key, spec.word_ngram) if word_key is not None else None,
        filters={key: TestFilter(grams[1]) for key, grams in test_grams.items()},
        exact=_ExactLookup(forms) if "exact" in keys else None,
        substring=_SubstringScan(forms, spec.min_substring_chars) if "substring" in keys else None,
    )
    exact: dict[int, str] = {}
    substring: dict[int, str] = {}
    seen = characters = 0
    yield report.progress(0, None, "segments", "reading the training data")
    for scanned in _scanned(scanner, _batches(segments, BATCH_SEGMENTS)):
        for key, hashes in scanned.hashes.items():
            indexes[key].add(hashes)
        for doc, source in scanned.exact.items():
            exact.setdefault(doc, source)  # the first record it is in
        for doc, source in scanned.substring.items():
            substring.setdefault(doc, source)
        seen += scanned.segments
        characters += scanned.characters
        yield report.progress(seen, None, "segments", "reading the training data")

    matches: dict[str, MethodMatches] = {}
    if "exact" in keys:
        matches["exact"] = _found_in(exact, len(documents), forms)
    if "substring" in keys:
        matches["substring"] = _found_in(substring, len(documents), forms)
    for method in char_methods:
        assert method.min_overlap is not None
        found = _ngram_matches(*test_grams[method.key], indexes[method.key], forms)
        assert found.overlap is not None
        found.flagged = found.overlap >= method.min_overlap
        matches[method.key] = found
    if word_key is not None:
        matches[word_key] = _ngram_matches(*test_grams[word_key], indexes[word_key], janitor_forms)
    return CheckResult(
        documents=list(documents),
        matches=matches,
        segments=seen,
        characters=characters,
        index_hashes=sum(index.hashes for index in indexes.values()),
        index_spilled=sum(index.spilled for index in indexes.values()),
    )


def _ngram_matches(
    batch: Batch,
    hashes: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    index: NgramIndex,
    forms: list[str],
) -> MethodMatches:
    count = len(batch)
    found = index.contains(hashes)
    docs = batch.text_of(starts)
    total = np.bincount(docs, minlength=count)
    hit = np.bincount(docs[found], minlength=count)
    overlap = hit / np.maximum(total, 1)
    offsets = batch.starts[docs[found]]
    windows = (docs[found], starts[found] - offsets, ends[found] - offsets)
    return MethodMatches(flagged=hit > 0, overlap=overlap, windows=windows, forms=forms)


def _found_in(training: dict[int, str], count: int, forms: list[str]) -> MethodMatches:
    flagged = np.zeros(count, dtype=bool)
    flagged[list(training)] = True
    return MethodMatches(flagged=flagged, training=training, forms=forms)


def _batches(segments: Iterable[Segment], size: int) -> Iterator[list[Segment]]:
    iterator = iter(segments)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass
class _Scanned:
    """What one batch of training texts holds of the test side."""

    hashes: dict[str, np.ndarray]
    """Each n-gram method's training hashes past its ``TestFilter``."""
    exact: dict[int, str]
    substring: dict[int, str]
    segments: int
    characters: int


@dataclass
class _Scanner:
    """The test side, prepared once, that each batch of training texts is compared with
    (in this process, or in worker processes that got a copy)."""

    char_ns: dict[str, int]
    word: tuple[str, int] | None
    filters: dict[str, TestFilter]
    exact: _ExactLookup | None
    substring: _SubstringScan | None

    def scan(self, batch: list[Segment]) -> _Scanned:
        part_forms = [[normal_form(part) for part in segment.parts] for segment in batch]
        texts = [" ".join(form for form in forms if form) for forms in part_forms]
        sources = [segment.source for segment in batch]
        hashed = Batch.of(texts)
        exact: dict[int, str] = {}
        if self.exact is not None:
            exact = self.exact.scan(hashed.whole(), sources)
            parts = [
                (form, source)
                for forms, source in zip(part_forms, sources, strict=True)
                if len(forms) > 1
                for form in forms
            ]
            if parts:
                alone = self.exact.scan(
                    Batch.of([form for form, _ in parts]).whole(), [s for _, s in parts]
                )
                exact = alone | exact
        substring = self.substring.scan(texts, sources) if self.substring is not None else {}
        hashes = {
            key: self.filters[key].keep(hashed.char_ngrams(n)[0]) for key, n in self.char_ns.items()
        }
        if self.word is not None:
            key, n = self.word
            janitor = Batch.of([janitor_training_form(segment.text) for segment in batch])
            hashes[key] = self.filters[key].keep(janitor.word_ngrams(n)[0])
        return _Scanned(hashes, exact, substring, len(batch), int(hashed.lengths.sum()))


_WORKER_SCANNER: _Scanner | None = None


def _start_worker(scanner: _Scanner) -> None:
    global _WORKER_SCANNER
    _WORKER_SCANNER = scanner


def _scan_in_worker(batch: list[Segment]) -> _Scanned:
    assert _WORKER_SCANNER is not None
    return _WORKER_SCANNER.scan(batch)


def _scanned(scanner: _Scanner, batches: Iterator[list[Segment]]) -> Iterator[_Scanned]:
    """Each batch scanned, in order: here when there is one batch, else in ``WORKERS``
    processes while this one reads the next batches (at most two each in flight)."""
    first = next(batches, None)
    second = next(batches, None)
    if first is None:
        return
    if second is None or WORKERS < 2:
        for batch in (first, second, *batches) if second is not None else (first,):
            yield scanner.scan(batch)
        return
    import multiprocessing
    from collections import deque

    context = multiprocessing.get_context("spawn")  # the stage's own threads stay out of it
    with context.Pool(WORKERS, initializer=_start_worker, initargs=(scanner,)) as pool:
        pending: deque = deque()
        for batch in (first, second, *batches):
            pending.append(pool.apply_async(_scan_in_worker, (batch,)))
            if len(pending) >= 2 * WORKERS:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


class _ExactLookup:
    """The test texts' hashes, looked up as the training texts' go by."""

    def __init__(self, forms: list[str]) -> None:
        hashes = Batch.of(forms).whole()
        self._docs: dict[int, list[int]] = {}
        for doc, (value, form) in enumerate(zip(hashes.tolist(), forms, strict=True)):
            if form:
                self._docs.setdefault(value, []).append(doc)
        self._sorted = np.array(sorted(self._docs), dtype=np.uint64)

    def scan(self, hashes: np.ndarray, sources: list[str]) -> dict[int, str]:
        """The test documents among ``hashes``, each with its first training record."""
        found: dict[int, str] = {}
        for row in np.flatnonzero(np.isin(hashes, self._sorted)).tolist():
            for doc in self._docs[int(hashes[row])]:
                found.setdefault(doc, sources[row])
        return found


class _SubstringScan:
    """An Aho-Corasick automaton of the test texts, run over each training text."""

    def __init__(self, forms: list[str], min_chars: int) -> None:
        import ahocorasick

        docs: dict[str, list[int]] = {}
        for doc, form in enumerate(forms):
            if len(form) >= min_chars:
                docs.setdefault(form, []).append(doc)
        self._automaton = ahocorasick.Automaton()
        for form, found in docs.items():
            self._automaton.add_word(form, found)
        self._empty = not docs
        if not self._empty:
            self._automaton.make_automaton()

    def scan(self, texts: list[str], sources: list[str]) -> dict[int, str]:
        """The test documents inside ``texts``, each with its first training record."""
        found: dict[int, str] = {}
        if self._empty:
            return found
        for text, source in zip(texts, sources, strict=True):
            for _, docs in self._automaton.iter(text):
                for doc in docs:
                    found.setdefault(doc, source)
        return found
