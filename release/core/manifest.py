"""The release manifest: what each stage read, wrote and measured.

``<workspace>/manifest.json`` is the release's memory. For every finished stage it holds
a key (a hash of the stage's settings and inputs), the files it wrote (path, bytes,
sha256), the facts it measured (parameter counts, perplexities, agreements…), its timing
and the versions of the tools it used. The runner reads it back to skip stages whose
inputs have not changed; the card reads its facts so every number on the card is a
measured one.

It is written atomically after every stage, so a killed run leaves the manifest of the
last finished stage, never a torn file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from release.core.errors import InputError
from release.core.files import atomic_write_text, hub_cache_sha256, sha256_file
from release.core.hashing import HashAhead

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1

RUN_ONLY_FIELDS = frozenset({"finished_at", "seconds", "measured"})
"""A stage record's fields that tell how one run went (when it finished, how long it
took, the machine as it found it), not what the release is: two runs of one release on
two runners differ in these and nothing else. The hash cache (absolute paths of this
machine) is run-only too; it is never published. ``Manifest.release_sha256`` leaves
them out, so the push can tell a rerun of a published release from another release."""


class FileRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str
    bytes: int
    sha256: str


class StageRecord(BaseModel):
    status: Literal["done"] = "done"
    key: str
    finished_at: str
    seconds: float
    inputs: list[FileRecord] = Field(default_factory=list)
    outputs: list[FileRecord] = Field(default_factory=list)
    settings: dict[str, Any] | None = None
    """The stage's settings as its key holds them, so a later run can say which one
    changed (``release.runner.stale_reasons``); None in a record of an older version."""
    facts: dict[str, Any] = Field(default_factory=dict)
    measured: dict[str, Any] = Field(default_factory=dict)
    """The machine as this run found it (peak memory, free disk); keyed nowhere."""
    tools: dict[str, str] = Field(default_factory=dict)


class Refusal(BaseModel):
    """A stage that ran and said no (``core.errors.Refused``): why, and what it measured."""

    finished_at: str
    message: str
    facts: dict[str, Any] = Field(default_factory=dict)


class _CachedHash(BaseModel):
    bytes: int
    mtime_ns: int
    sha256: str


class Manifest(BaseModel):
    schema_version: Literal[1] = SCHEMA_VERSION
    name: str
    version: str
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    refused: dict[str, Refusal] = Field(
        default_factory=dict,
        description="Stages whose verdict was no on the last run (the gate), by name.",
    )
    hash_cache: dict[str, _CachedHash] = Field(
        default_factory=dict,
        description="sha256 of large input files by (path, size, mtime), to skip rehashing.",
    )
    _ahead: HashAhead | None = PrivateAttr(default=None)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            return cls.model_validate_json(path.read_bytes())
        except (ValidationError, ValueError) as exc:
            first = str(exc).splitlines()[0]
            raise InputError(
                f"{path}: not a model-release manifest ({first})",
                hint="move it away to start the release afresh",
            ) from None

    @classmethod
    def load_or_new(cls, path: Path, *, name: str, version: str) -> Manifest:
        if path.exists():
            manifest = cls.load(path)
            if (manifest.name, manifest.version) == (name, version):
                return manifest
        return cls(name=name, version=version)

    @model_serializer(mode="wrap")
    def _without_empty_refused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """``refused`` only while there is a refusal: a manifest without one is written
        byte for byte as before the field existed (the published manifest, its sha256)."""
        data = handler(self)
        if not self.refused:
            data.pop("refused", None)
        return data

    def release_sha256(self) -> str:
        """sha256 of what the manifest says about the release: all of it but the hash
        cache and each stage's ``RUN_ONLY_FIELDS``."""
        run_only = {"__all__": set(RUN_ONLY_FIELDS)}
        exclude = {"hash_cache": True, "stages": run_only, "refused": run_only}
        content = dumps_canonical(self.model_dump(mode="json", exclude=exclude))
        return hashlib.sha256(content.encode()).hexdigest()

    def save(self, path: Path) -> None:
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")

    def hash_file(self, path: Path) -> str:
        """sha256 of ``path``, reusing the cached value while size and mtime match, or
        the Hub's own for a file of the Hugging Face cache (``hub_cache_sha256``), or
        the one hashed ahead (``hashing_ahead``)."""
        stat = path.stat()
        cached = self._cached(path, stat)
        if cached is not None:
            return cached
        ahead = self._ahead.take(path, stat.st_size, stat.st_mtime_ns) if self._ahead else None
        digest = ahead or hub_cache_sha256(path) or sha256_file(path)
        self.hash_cache[str(path.absolute())] = _CachedHash(
            bytes=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=digest
        )
        return digest

    def _cached(self, path: Path, stat: os.stat_result) -> str | None:
        cached = self.hash_cache.get(str(path.absolute()))
        if cached and (cached.bytes, cached.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            return cached.sha256
        return None

    @contextlib.contextmanager
    def hashing_ahead(self, paths: Iterable[Path]) -> Iterator[None]:
        """Hash the files of ``paths`` that ``hash_file`` would read on background threads
        while the block runs (``release.core.hashing``); stop them when it ends."""
        todo = [
            path
            for path in paths
            if self._cached(path, path.stat()) is None and hub_cache_sha256(path) is None
        ]
        self._ahead = HashAhead(todo) if todo else None
        try:
            yield
        finally:
            if self._ahead is not None:
                self._ahead.close()
            self._ahead = None

    def remember_hash(self, path: Path, sha256: str) -> None:
        """Take ``sha256`` as ``path``'s, as it is now (its writer hashed what it wrote)."""
        stat = path.stat()
        self.hash_cache[str(path.absolute())] = _CachedHash(
            bytes=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=sha256
        )

    def forget_missing_hashes(self) -> None:
        """Drop cached hashes of files no longer there (the old place of a moved folder)."""
        self.hash_cache = {key: v for key, v in self.hash_cache.items() if Path(key).exists()}

    def record(self, path: Path, relative_to: Path | None = None) -> FileRecord:
        shown = os.path.relpath(path, relative_to) if relative_to else str(path.absolute())
        return FileRecord(path=shown, bytes=path.stat().st_size, sha256=self.hash_file(path))


def release_sha256_of(data: bytes) -> str | None:
    """``Manifest.release_sha256`` of a manifest's bytes; None for bytes that are not one."""
    try:
        return Manifest.model_validate_json(data).release_sha256()
    except (ValidationError, ValueError):
        return None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def dumps_canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
