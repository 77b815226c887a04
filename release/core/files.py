"""Files written so that a killed run never leaves one that looks complete.

Everything goes to a temporary name in the same folder, is flushed and fsynced, and only
then renamed over the final name (``os.replace`` is atomic on POSIX). Folders of outputs
get the same treatment: a stage writes into ``.partial-<name>`` and the folder is renamed
when the stage succeeds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from release.core.redact import redact


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit fsync and rename it over
    ``path``; on an exception remove it, leaving ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` with every token in it hidden (``redact``): a card, a manifest or a
    spec is uploaded or shared, so no token reaches a file by this way either."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(redact(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def replace_dir(staging: Path, final: Path) -> None:
    """Move a finished staging folder to its final name, replacing an older one."""
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, final)
    _fsync_dir(final.parent)


def clear_leftovers(folder: Path) -> None:
    """Remove what killed writers left directly in ``folder``: ``.partial-*`` staging
    folders, ``.old-*`` folders of ``replace_dir`` and ``atomic_open``'s temporary files.

    Only for a folder no other writer is using (the runner holds the workspace lock).
    A stage's own staging folder is cleared when the stage runs again, but a stage that
    a later run skips (a killed ``--force``) would keep its staging folder forever.
    """
    for pattern in (".partial-*", ".old-*", ".*.partial"):
        for path in folder.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes (``hashlib.file_digest`` reads into one reused buffer:
    about a third faster than hashing a new bytes object per chunk)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


HUB_CACHE_REPO_PREFIXES = ("models--", "datasets--", "spaces--")
"""The Hugging Face cache's folder of one repository starts with one of these."""


def hub_cache_sha256(path: Path) -> str | None:
    """The sha256 a Hugging Face cache file is stored under, or None.

    huggingface_hub keeps each LFS file of a download as ``models--<org>--<name>/blobs/
    <sha256>`` (the Hub's own hash of it; a snapshot's files link there), and checks each
    download's size against the Hub's. A base given as a path into that cache (a snapshot
    folder) is then keyed without reading tens of GB on the first run; a file anywhere
    else is hashed as usual."""
    blob = path.resolve()
    repo_folder = blob.parent.parent.name
    if blob.parent.name != "blobs" or not repo_folder.startswith(HUB_CACHE_REPO_PREFIXES):
        return None
    name = blob.name
    if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
        return name
    return None  # a small file kept in git: named by its git sha1, not its sha256


def iter_files(root: Path) -> list[Path]:
    """Every regular file below ``root`` (or ``root`` itself), sorted, hidden ones left out."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
