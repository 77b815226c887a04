"""Small real filesystems for tests that need a disk to run out (root only: tmpfs)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` ("48m") mounted at ``mount`` for the block; skips the test
    where mounting is not allowed."""
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 48 MB tmpfs: room for the tiny release, then filled on demand."""
    with tmpfs(tmp_path / "disk", "48m") as mount:
        yield mount
