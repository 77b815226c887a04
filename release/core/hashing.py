"""Input files hashed on background threads while the stages run.

A stage's key holds the sha256 of every file it reads in full; on a first run that is a
read of the whole base (0.6 s a GB on one core) before the stage starts. The runner
hands the files it will key to ``HashAhead`` when a run starts; threads hash them
(hashlib and file reads release the GIL) while intake runs and while the merge reads the
same bytes, and ``Manifest.hash_file`` takes each result when the key asks for it.

A result is taken only for the file as it was hashed: same size and mtime before and
after the read, and now. ``close`` stops the threads between two reads, so a run that
ends early does not wait for a file it no longer needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CHUNK = 8 * 2**20

WORKERS = max(1, min(4, (os.cpu_count() or 1) // 2))
"""Files hashed at once: half the cores (one on two), so the stages keep the rest."""


@dataclass(frozen=True)
class Hashed:
    bytes: int
    mtime_ns: int
    sha256: str


class HashAhead:
    """Hashes ``paths`` on ``WORKERS`` threads, in order; ``take`` waits for one."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(
            WORKERS, thread_name_prefix="hash-ahead", initializer=_yield_to_the_stages
        )
        self._pending: dict[str, Future[Hashed | None]] = {}
        for path in paths:
            key = str(path.absolute())
            if key not in self._pending:
                self._pending[key] = self._pool.submit(self._hash, path)

    def take(self, path: Path, size: int, mtime_ns: int) -> str | None:
        """The sha256 hashed ahead for ``path`` as it is now (``size``, ``mtime_ns``), or
        None when it was not asked for, changed while or since it was hashed, or failed."""
        pending = self._pending.pop(str(path.absolute()), None)
        if pending is None or pending.cancelled():
            return None
        try:
            hashed = pending.result()
        except OSError:
            return None  # read again by the caller, which reports the error
        if hashed is None or (hashed.bytes, hashed.mtime_ns) != (size, mtime_ns):
            return None
        return hashed.sha256

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _hash(self, path: Path) -> Hashed | None:
        before = path.stat()
        digest = hashlib.sha256()
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as handle:
            while size := handle.readinto(buffer):
                if self._stop.is_set():
                    return None
                digest.update(view[:size])
        after = path.stat()
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            return None
        return Hashed(after.st_size, after.st_mtime_ns, digest.hexdigest())


def _yield_to_the_stages() -> None:
    """Lower this thread's priority (Linux: nice is per thread), so on a busy machine
    the stage's own threads go first and the hash takes the cycles they leave."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
