"""The training side: each record of eval.contamination.training_data as one text.

Files: JSONL, JSON (a list of records), Parquet and plain text (a line each), or a
folder of them; a Hub dataset already in the local ``datasets`` cache (read offline:
nothing is downloaded). From a record, the fields named in the spec, else the first
layout recognized (``LAYOUTS``): chat ``messages`` (or ``conversations``), instruction
/ input / output, prompt / completion or response, question / answer, text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.core.errors import InputError
from release.evaluate.contamination.offline import offline
from release.spec.schema import TrainingDataSpec

SUFFIXES = (".jsonl", ".json", ".parquet", ".txt")
LAYOUTS: tuple[tuple[str, ...], ...] = (
    ("messages",),
    ("conversations",),
    ("instruction", "input", "output"),
    ("instruction", "response"),
    ("prompt", "completion"),
    ("prompt", "response"),
    ("question", "answer"),
    ("text",),
)
"""Fields read from a record when the spec names none: the first layout whose first
field the record has (later fields of it only when present)."""


@dataclass(frozen=True)
class Segment:
    """One training record."""

    source: str
    """The file (or dataset) and record: ``train.jsonl:12``."""
    parts: tuple[str, ...]
    """Its fields' texts (a chat's messages), each also matched alone by exact match."""

    @property
    def text(self) -> str:
        return "\n".join(self.parts)


def training_files(source: TrainingDataSpec) -> list[Path]:
    """The files a local source reads (its input files, for the stage's key)."""
    if source.path is None:
        return []
    if source.path.is_dir():
        return sorted(p for p in source.path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    return [source.path]


def read_segments(sources: Sequence[TrainingDataSpec]) -> Iterator[Segment]:
    """Every training text, source by source, in order."""
    for source in sources:
        if source.hub is not None:
            yield from _hub_records(source)
            continue
        files = training_files(source)
        if not files:
            raise InputError(
                f"eval.contamination.training_data: {source.path}: no {', '.join(SUFFIXES)} files",
                hint="name a file or a folder of training data",
            )
        for file in files:
            yield from _file_segments(file, source.fields)


def _file_segments(file: Path, fields: Sequence[str]) -> Iterator[Segment]:
    if file.suffix == ".txt":
        with file.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    yield Segment(f"{file.name}:{number}", (line.rstrip("\n"),))
        return
    for number, record in _records(file):
        yield Segment(f"{file.name}:{number}", record_parts(record, fields, f"{file}:{number}"))


def _records(file: Path) -> Iterator[tuple[int, Any]]:
    try:
        if file.suffix == ".jsonl":
            with file.open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    if line.strip():
                        yield number, json.loads(line)
        elif file.suffix == ".json":
            records = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(records, list):
                raise InputError(
                    f"{file}: a JSON training file holds a list of records",
                    hint="write a list, or one record a line as JSONL",
                )
            yield from enumerate(records, 1)
        else:
            import pyarrow.parquet as pq

            number = 0
            for batch in pq.ParquetFile(file).iter_batches():
                for record in batch.to_pylist():
                    number += 1
                    yield number, record
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(
            f"{file}: not readable training data ({exc})", hint="fix or leave out the file"
        ) from None


def record_parts(record: Any, fields: Sequence[str], where: str) -> tuple[str, ...]:
    """The texts of one record: its fields' values (a chat's messages, each)."""
    if isinstance(record, str):
        return (record,)
    if not isinstance(record, dict):
        raise InputError(f"{where}: a training record is an object or a string")
    if fields:
        missing = [name for name in fields if name not in record]
        if missing:
            raise InputError(
                f"{where}: the record has no field {missing[0]!r}",
                hint="fix eval.contamination.training_data's fields",
            )
        names: Sequence[str] = fields
    else:
        layout = next((layout for layout in LAYOUTS if layout[0] in record), None)
        if layout is None:
            raise InputError(
                f"{where}: none of the fields {', '.join(sorted(record)) or '(none)'} is a "
                "known layout (messages, instruction/output, prompt/completion, text…)",
                hint="name the fields to read: training_data: [{path: …, fields: [...]}]",
            )
        names = [name for name in layout if name in record]
    return tuple(part for name in names for part in _value_parts(record[name]))


def _value_parts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):  # chat messages, or a list of texts
        return [_message_text(item) for item in value]
    return [] if value is None else [str(value)]


def _message_text(item: Any) -> str:
    if isinstance(item, dict):
        content = item.get("content", item.get("value", ""))
        if isinstance(content, list):  # multimodal parts: their text
            return "\n".join(
                str(part.get("text", "")) for part in content if isinstance(part, dict)
            )
        return "" if content is None else str(content)
    return str(item)


def _hub_records(source: TrainingDataSpec) -> Iterator[Segment]:
    """A dataset from the local ``datasets`` cache, offline."""
    try:
        import datasets
    except ImportError:
        raise InputError(
            f"eval.contamination.training_data: {source.hub}: reading a Hub dataset needs "
            "the datasets library",
            hint="pip install datasets, or point path at the files",
        ) from None
    try:
        with offline():
            rows = datasets.load_dataset(
                source.hub, source.config, split=source.split, revision=source.revision
            )
    except Exception as exc:  # datasets raises many kinds for a dataset it cannot find
        raise InputError(
            f"eval.contamination.training_data: {source.hub}: not in the local datasets "
            f"cache ({type(exc).__name__})",
            hint=f"load it once with datasets.load_dataset({source.hub!r}), or give its files",
        ) from None
    for number, record in enumerate(rows, 1):
        where = f"{source.hub}:{number}"
        yield Segment(where, record_parts(record, source.fields, where))
