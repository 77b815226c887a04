"""Files hashed ahead on a background thread (release.core.hashing): a result is used
only for the file as it is when the key asks for it."""

from __future__ import annotations

import hashlib
import os

from release.core.hashing import HashAhead
from release.core.manifest import Manifest


def test_a_file_hashed_ahead_is_taken_as_hashlib_hashes_it(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(3 * 2**20 + 17))  # not a whole number of chunks
    manifest = Manifest(name="t", version="1")
    with manifest.hashing_ahead([path]):
        assert manifest.hash_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_file_changed_after_it_was_hashed_ahead_is_hashed_again(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"before" * 1000)
    ahead = HashAhead([path])
    stat = path.stat()
    assert (
        ahead.take(path, stat.st_size, stat.st_mtime_ns)
        == hashlib.sha256(b"before" * 1000).hexdigest()
    )

    ahead = HashAhead([path])
    ahead._pending[str(path.absolute())].result()  # hashed as it was
    path.write_bytes(b"after!" * 1000)  # same size, new mtime
    stat = path.stat()
    assert ahead.take(path, stat.st_size, stat.st_mtime_ns) is None
    ahead.close()

    manifest = Manifest(name="t", version="1")
    with manifest.hashing_ahead([path]):
        path.write_bytes(b"again!" * 1000)
        assert manifest.hash_file(path) == hashlib.sha256(b"again!" * 1000).hexdigest()


def test_files_already_cached_or_in_the_hub_cache_are_not_hashed_ahead(tmp_path):
    blob = "ab" * 32
    hub = tmp_path / "models--org--name" / "blobs" / blob
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"lfs file")
    cached = tmp_path / "cached.bin"
    cached.write_bytes(b"cached")
    manifest = Manifest(name="t", version="1")
    manifest.hash_file(cached)
    with manifest.hashing_ahead([hub, cached]):
        assert manifest._ahead is None
    assert manifest.hash_file(hub) == blob
