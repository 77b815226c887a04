"""One builder at a time for an entry of a cache the tests share (the test cache,
tests/conftest.py's TEST_CACHE, and the user's, where llama-perplexity is kept).

Under ``pytest -n 2`` (pytest-xdist) each worker sets up the session's fixtures, and two
of them may reach an entry that is not built yet at once: the second waits for the
first's lock, then finds the entry built. A lock is a file beside the entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def building(entry: Path) -> Iterator[Path]:
    """Hold ``entry``'s lock (``.<name>.lock`` beside it) while it is checked and built."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(entry.with_name(f".{entry.name}.lock")):
        yield entry
