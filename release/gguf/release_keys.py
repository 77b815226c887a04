"""Our header keys in a GGUF file someone else wrote (llama.cpp's converter).

The converter takes ``general.*`` values through its ``--metadata`` override, but not
all of them (it ignores ``general.license``, has no field for a release's repo or its
datasets) and never our ``model_release.*`` pins of the commits a release was made
from. ``add_release_keys`` appends the keys ``metadata.write_metadata`` would write and
the file lacks, without touching a byte of what is there.

How: a GGUF file is a fixed header (magic, version, tensor count, key count), the keys,
the tensor infos (offsets relative to the data section), padding to the alignment, and
the data section. New keys go after the old ones; the tensor infos follow unchanged,
the padding is recomputed, and the data section is copied in chunks, so the rewrite
holds no tensor in memory. It is written beside the file and renamed over it.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from pathlib import Path

import gguf

from release.gguf.metadata import ReleaseMetadata, write_metadata

_HEADER = struct.Struct("<IIQQ")
"""magic, version, tensor count, key count (little-endian, GGUF v2+)."""
_CHUNK = 16 * 2**20


def missing_keys(present: set[str], meta: ReleaseMetadata) -> dict[str, gguf.GGUFValue]:
    """The keys ``write_metadata`` writes for ``meta`` that are not ``present``."""
    scratch = gguf.GGUFWriter(path=None, arch="none")
    write_metadata(scratch, meta)
    return {key: value for key, value in scratch.kv_data[0].items() if key not in present}


def missing_key_bytes(present: set[str], meta: ReleaseMetadata) -> int:
    """The bytes ``add_release_keys`` adds to a file whose keys are ``present``."""
    keys = missing_keys(present, meta)
    return len(_packed(keys)) if keys else 0


def add_release_keys(path: Path, meta: ReleaseMetadata) -> list[str]:
    """Append the release's missing keys to the GGUF at ``path`` (atomically); the keys
    added, in order."""
    reader = gguf.GGUFReader(path)
    keys = missing_keys(set(reader.fields), meta)
    if not keys:
        return []
    first_info = min((t.field.offset for t in reader.tensors), default=None)
    kv_start = _HEADER.size
    kv_end = first_info if first_info is not None else _kv_end(reader)
    info_end = max(
        (t.field.offset + sum(p.nbytes for p in t.field.parts) for t in reader.tensors),
        default=kv_end,
    )
    data_offset, alignment = reader.data_offset, reader.alignment
    version, tensor_count, kv_count = (
        int(reader.fields[f"GGUF.{name}"].parts[-1][0])
        for name in ("version", "tensor_count", "kv_count")
    )
    del reader  # its memory map
    new_kv = _packed(keys)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as out:
        staged = Path(out.name)
        try:
            with open(path, "rb") as source:
                out.write(
                    _HEADER.pack(gguf.GGUF_MAGIC, version, tensor_count, kv_count + len(keys))
                )
                source.seek(kv_start)
                out.write(source.read(kv_end - kv_start))
                out.write(new_kv)
                out.write(source.read(info_end - kv_end))
                out.write(b"\0" * (-out.tell() % alignment))
                source.seek(data_offset)
                shutil.copyfileobj(source, out, _CHUNK)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
    os.replace(staged, path)
    return list(keys)


def _kv_end(reader: gguf.GGUFReader) -> int:
    """Where the keys end in a file without tensors: after its last field."""
    last = max(reader.fields.values(), key=lambda field: field.offset)
    return last.offset + sum(part.nbytes for part in last.parts)


def _packed(keys: dict[str, gguf.GGUFValue]) -> bytes:
    """``keys`` serialized as GGUF key/value entries, by gguf-py's own writer."""
    with tempfile.TemporaryDirectory(prefix="gguf-keys-") as folder:
        scratch_path = Path(folder) / "keys.gguf"
        scratch = gguf.GGUFWriter(path=None, arch="none")
        scratch.kv_data[0].clear()  # not even general.architecture: only ``keys``
        scratch.kv_data[0].update(keys)
        scratch.write_header_to_file(path=scratch_path)
        scratch.write_kv_data_to_file()
        scratch.close()
        return scratch_path.read_bytes()[_HEADER.size :]
