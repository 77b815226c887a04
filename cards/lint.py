"""Lint any model card: ``file:line: error|warning: message``.

The metadata is validated against ``cards.schema`` (the same models model-release
writes with), and each pydantic error is placed on the line of the key it concerns.
Unknown keys are fine on the Hub, so they are reported only when they look like a
misspelt known key (``licence:``). Rules that span fields run on the raw data, so
they are reported even when the card has other errors. The body is checked by
``cards.body``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import ValidationError

from cards import body, yamlio
from cards.card_rules import WHOLE_CARD_KINDS, whole_card_problems
from cards.errors import CardError, dotted
from cards.frontmatter import split
from cards.schema import METADATA_KEYS, CardMetadata
from cards.yamlio import LineMap, line_map


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    severity: Literal["error", "warning"]
    message: str
    field: str | None = None

    def format(self) -> str:
        return f"{self.path}:{self.line}: {self.severity}: {self.message}"


def lint_file(path: str | Path) -> list[Problem]:
    """Lint a card on disk; an unreadable file is a ``CardError``."""
    try:
        text = yamlio.read_bounded(path)
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise CardError(f"{path}: cannot read card ({reason})") from error
    return lint_card(text, path=str(path))


def lint_card(text: str, path: str = "README.md") -> list[Problem]:
    """All problems in a card's text, sorted by line."""
    found: list[Problem] = []

    def add(line: int, severity: str, message: str, field: str | None = None) -> None:
        found.append(Problem(path, line, severity, message, field))

    front = split(text)
    if front is None:
        add(1, "error", "YAML front matter opened with '---' is never closed")
        return found
    data = _metadata(front, add)
    lines = list(enumerate(front.body.splitlines(), start=front.body_line))
    prose, blocks = body.scan(front.body, front.body_line)
    findings = [
        *body.bibtex_findings(blocks),
        *body.table_findings(prose, data.get("model-index")),
        *body.impossible_value_findings(prose),
        *body.base_model_findings(lines, data.get("base_model")),
        *body.parameter_findings(prose),
        *_non_finite_findings(prose),
    ]
    for line, severity, message in findings:
        add(line, severity, message)
    unique = {(p.line, p.severity, p.message): p for p in found}
    return sorted(unique.values(), key=lambda p: (p.line, p.severity, p.message))


def _metadata(front, add) -> dict:
    """Check the front matter; returns it as a dict ({} when absent or unreadable)."""
    if front.yaml_text is None:
        add(
            1, "warning", "no YAML front matter: the Hub will show no license, base model or scores"
        )
        return {}
    try:
        data, root = yamlio.load_with_nodes(front.yaml_text)
        where = line_map(root, front.yaml_line)
    except yaml.YAMLError as error:
        mark, begun = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
        line = front.yaml_line + mark.line if mark else front.yaml_line
        message = f"YAML front matter does not parse: {getattr(error, 'problem', error)}"
        if begun and mark and begun.line != mark.line:
            message += f" (in what begins on line {front.yaml_line + begun.line})"
        add(line, "error", message)
        return {}
    if data is None:
        add(front.yaml_line, "warning", "YAML front matter is empty")
        return {}
    if not isinstance(data, dict):
        add(front.yaml_line, "error", "YAML front matter must be a mapping of keys to values")
        return {}
    for line, key, first in where.duplicates:
        add(
            line,
            "error",
            f"key {key!r} given twice (first on line {first}); the Hub keeps only the last",
        )
    _schema_problems(data, where, front.yaml_line, add)
    for path in _non_finite_paths(data, ()):
        add(where.line_of(path, front.yaml_line), "error", _NOT_A_NUMBER, dotted(path))
    for problem in whole_card_problems(data):
        # a rule about the whole card (no license) points at the opening '---'
        line = where.line_of(problem.path, front.yaml_line) if problem.path else front.yaml_line - 1
        add(line, problem.severity, problem.message, dotted(problem.path) or None)
    return data


_NOT_A_NUMBER = "value is nan or inf, not a number: a broken run, never a score to publish"
_NON_FINITE_WORD = r"[-+]?\.?(?:nan|inf|infinity)"
_NON_FINITE_CELL = re.compile(rf"{_NON_FINITE_WORD}%?", re.I)
_NON_FINITE_SHOWN = re.compile(
    rf"(?:[:=→×]|\d\s*(?:->|to))\s*\**`?({_NON_FINITE_WORD})"
    r"(?=%?[*`]*\s*(?:$|[,;)|]|\.(?:\s|$)))",  # the value ends there: "NaN values" is prose
    re.I,
)


def _non_finite_paths(value, path: tuple) -> list[tuple]:
    """Where the front matter holds a float that is not finite (``.nan``, ``.inf``);
    the schema already says so of model-index's values."""
    if path == ("model-index",):
        return []
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _non_finite_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _non_finite_paths(item, (*path, i))]
    return [path] if isinstance(value, float) and not math.isfinite(value) else []


def _non_finite_findings(prose: list[tuple[int, str]]):
    """A table cell, or a value after ``:``, ``=``, ``→`` or ``×``, that reads nan or inf."""
    for line, text in prose:
        cells = text.strip().strip("|").split("|") if text.lstrip().startswith("|") else []
        shown = [c.strip("*` ") for c in cells if _NON_FINITE_CELL.fullmatch(c.strip("*` "))]
        match = _NON_FINITE_SHOWN.search(text)
        if shown or match:
            what = shown[0] if shown else match.group(1)
            yield line, "error", f"the card shows {what!r}: {_NOT_A_NUMBER}"


def _schema_problems(data: dict, where: LineMap, default: int, add) -> None:
    try:
        CardMetadata.model_validate(data)
    except ValidationError as error:
        for err in error.errors():
            if err["type"] in WHOLE_CARD_KINDS:
                continue
            loc = tuple(err["loc"])
            line = where.line_of(loc, default)
            message = _message(err, loc)
            if message:
                severity = "warning" if err["type"] == "extra_forbidden" else "error"
                add(line, severity, message, dotted(loc))


def _message(err: dict, loc: tuple) -> str | None:
    """A pydantic error in a card author's words; ``None`` to stay silent."""
    field = dotted(loc)
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        if len(loc) == 1:
            close = difflib.get_close_matches(str(loc[0]), sorted(METADATA_KEYS), n=1, cutoff=0.75)
            return f"unknown key {loc[0]!r}; did you mean {close[0]!r}?" if close else None
        return f"{field}: unknown key; huggingface_hub drops it"
    if kind == "missing":
        return f"{field}: required but missing"
    if value is None:
        return f"{field}: empty (null) entry"
    if kind == "string_too_short":
        return f"{field}: empty string"
    if kind == "finite_number":
        return f"{field}: {value} is not a finite number"
    if kind == "string_type":
        return f"{field}: must be a string, not {type(value).__name__} ({value!r})"
    return f"{field}: {err['msg'].removeprefix('Value error, ')}"


def to_json(problems: list[Problem]) -> str:
    return json.dumps([asdict(p) for p in problems], indent=2)
