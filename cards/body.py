"""Checks on a card's Markdown body against its own metadata.

- BibTeX in ```bibtex fences (or any fence that opens with ``@type{``) must parse.
- A number in a table row that names a model-index result and metric must agree with
  model-index, up to the rounding the table shows, as a fraction or a percentage.
- A line that speaks of the base model must name the metadata's ``base_model``.
- A number in any table that is a share (an accuracy-like metric, or written with %)
  must lie in [0, 100], whatever the table's layout.
- Parameter counts stated in prose must agree with each other.

Each check yields ``(line, severity, message)`` with 1-based card line numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cards.citations import parse_bibtex
from cards.schema import is_bounded_metric

Finding = tuple[int, str, str]

_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_BIBTEX_START = re.compile(r"^\s*@\w+\s*[{(]")


@dataclass
class Block:
    """A fenced code block: its info string, first content line, and text."""

    info: str
    line: int
    text: str


def scan(body: str, first_line: int) -> tuple[list[tuple[int, str]], list[Block]]:
    """Prose lines (numbered, outside fences) and fenced blocks of ``body``."""
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    fence: tuple[str, str, int, list[str]] | None = None
    for number, line in enumerate(body.splitlines(), start=first_line):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = (match.group(1)[0] * 3, match.group(2).lower(), number + 1, [])
        elif fence is not None and line.strip().startswith(fence[0]):
            blocks.append(Block(fence[1], fence[2], "\n".join(fence[3])))
            fence = None
        elif fence is not None:
            fence[3].append(line)
        else:
            prose.append((number, line))
    return prose, blocks


def is_bibtex(block: Block) -> bool:
    """A ```bibtex (or ```bib) fence, or a bare fence that opens with ``@type{``."""
    return block.info in ("bibtex", "bib") or (
        not block.info and bool(_BIBTEX_START.match(block.text))
    )


def bibtex_findings(blocks: list[Block]) -> Iterator[Finding]:
    for block in blocks:
        if is_bibtex(block):
            for problem in parse_bibtex(block.text)[1]:
                yield block.line + problem.line - 1, problem.severity, problem.message


# --- tables against model-index -------------------------------------------------------

_VALUE_HEADERS = {"value", "score", "result", "results"}  # normalized header cells
_NUMBER = re.compile(r"^[+-]?(\d+)(?:\.(\d+))?\s*(%?)")


def _norm(text: Any) -> str:
    """Compare labels loosely: 'ARC-Easy' = 'arc_easy' = '**arc easy**'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", str(text or ""))
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass
class Score:
    datasets: set[str]
    metrics: set[str]
    value: float


def scores(model_index: Any) -> list[Score]:
    """The numeric scores of a (possibly malformed) model-index, with their labels."""
    found = []
    for entry in model_index if isinstance(model_index, list) else []:
        for result in _list(entry.get("results")) if isinstance(entry, dict) else []:
            if not isinstance(result, dict):
                continue
            task, dataset = result.get("task") or {}, result.get("dataset") or {}
            if not isinstance(task, dict) or not isinstance(dataset, dict):
                continue
            kind = str(dataset.get("type") or "")
            names = {kind, kind.split("/")[-1], *_texts(dataset, "name", "config")}
            names.update(_texts(task, "name"))
            for metric in _list(result.get("metrics")):
                value = metric.get("value") if isinstance(metric, dict) else None
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                labels = set(_texts(metric, "type", "name"))
                if metric.get("config"):
                    labels.add(f"{metric.get('type')} ({metric.get('config')})")
                found.append(Score(_labels(names), _labels(labels), float(value)))
    return found


def _list(value: Any) -> list:
    """``value`` when it is a list (a malformed card may hold a number there), else []."""
    return value if isinstance(value, list) else []


def _texts(mapping: dict, *keys: str) -> list[str]:
    """The values of ``keys`` that are strings (a malformed card may hold lists there)."""
    return [value for key in keys if isinstance(value := mapping.get(key), str)]


def _labels(texts: set) -> set[str]:
    return {_norm(t) for t in texts if t} - {""}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _tables(
    prose: list[tuple[int, str]],
) -> Iterator[tuple[list[str], list[tuple[int, list[str]]]]]:
    """(header cells, rows) of each pipe table; rows keep their line numbers."""
    i = 0
    while i < len(prose):
        line = prose[i][1]
        below = prose[i + 1][1] if i + 1 < len(prose) else ""
        if line.lstrip().startswith("|") and re.match(r"^\s*\|?\s*:?-{3,}", below):
            header = _cells(line)
            i += 2
            rows = []
            while i < len(prose) and prose[i][1].lstrip().startswith("|"):
                rows.append((prose[i][0], _cells(prose[i][1])))
                i += 1
            yield header, rows
        else:
            i += 1


def _agrees(shown: re.Match, value: float) -> bool:
    """Does the number as shown round (or truncate) from ``value``, as-is or in %?"""
    number = float(shown.group(0).rstrip("% "))
    step = 10.0 ** -len(shown.group(2) or "")
    candidates = (value * 100,) if shown.group(3) else (value, value * 100, value / 100)
    return any(abs(number - c) <= step + 1e-9 for c in candidates)


def _claims(raw_header: list[str], rows) -> Iterator[tuple[int, str, str | None, str]]:
    """(line, row label, metric or None for "any", cell) for each value cell of a table.

    Three layouts: a "Metric" column next to a "Value"/"Score" column; "| Metric |
    Value |" with the benchmark in the first column (Open LLM Leaderboard), where any
    of its metrics may be meant; and wide tables whose column headers are metrics.
    """
    header = [_norm(cell) for cell in raw_header]
    metric_col = header.index("metric") if "metric" in header else None
    for line, cells in rows:
        for col in range(1, min(len(header), len(cells))):
            if metric_col is None:
                yield line, cells[0], raw_header[col], cells[col]
            elif header[col] in _VALUE_HEADERS and metric_col < len(cells):
                yield line, cells[0], cells[metric_col] if metric_col else None, cells[col]


def table_findings(prose: list[tuple[int, str]], model_index: Any) -> Iterator[Finding]:
    known = scores(model_index)
    for raw_header, rows in _tables(prose) if known else ():
        for line, label, metric, cell in _claims(raw_header, rows):
            shown = _NUMBER.match(cell.strip("*` "))
            if not shown:
                continue
            row, column = _norm(label), None if metric is None else _norm(metric)
            same = [
                s for s in known if row in s.datasets and (column is None or column in s.metrics)
            ]
            if same and not any(_agrees(shown, s.value) for s in same):
                expected = ", ".join(f"{s.value:g}" for s in same)
                claim = f"{label} {metric}" if metric else label
                yield (
                    line,
                    "error",
                    f"table gives {claim} = {shown.group(0).strip()}, "
                    f"but model-index says {expected}",
                )


_CELL_NUMBER = re.compile(r"^([+-]?\d+(?:\.\d+)?)\s*(%?)$")
_COUNT_HEADER = re.compile(r"shot|sample|size|count|num|#|token|param|step|epoch|len", re.I)


def _bounded(label: str) -> bool:
    """Does a header or label name a share: an accuracy-like metric, or a percent?"""
    words = re.split(r"[\s()\[\]/,:*`]+", label.lower())
    return "%" in label or any(word and is_bounded_metric(word) for word in words)


def impossible_value_findings(prose: list[tuple[int, str]]) -> Iterator[Finding]:
    """Shares outside [0, 100] in any table: a value column next to a "Metric" column,
    a "| Metric | Value |" table, columns per metric or per benchmark (where only a
    ``%`` says the number is a share)."""
    for raw_header, rows in _tables(prose):
        header = [_norm(cell) for cell in raw_header]
        metric_col = header.index("metric") if "metric" in header else None
        for line, cells in rows:
            for col in range(1, min(len(header), len(cells))):
                shown = _CELL_NUMBER.match(cells[col].strip("*` "))
                if not shown or col == metric_col:
                    continue
                if metric_col is not None:
                    label = cells[metric_col] if header[col] in _VALUE_HEADERS else raw_header[col]
                elif _COUNT_HEADER.search(raw_header[col]):
                    continue
                else:
                    label = f"{cells[0]} {raw_header[col]}"
                number = float(shown.group(1))
                if (shown.group(2) or _bounded(label)) and not 0 <= number <= 100:
                    row = cells[0].strip("*` ")
                    if metric_col:  # a "Metric" column beside the row's label
                        what = f"{row} {cells[metric_col]}"
                    elif header[col] in _VALUE_HEADERS:  # "| Metric | Value |"
                        what = row
                    else:
                        what = f"{row} {raw_header[col]}"
                    yield (
                        line,
                        "error",
                        f"table gives {what} = {cells[col].strip('*` ')}: impossible for a "
                        "share, which lies in [0, 1] or [0, 100]",
                    )


# --- base model and parameter claims ----------------------------------------------------

_BASE_LINE = re.compile(r"base[ _-]?model|fine-?tuned (from|version of)|adapter (for|of|on)", re.I)
_MENTION = re.compile(
    r"huggingface\.co/(?!datasets/|spaces/)([\w.-]+/[\w.-]+)"
    r"|`([\w.-]+/[\w.-]+)`"
    r"|\[([\w.-]+/[\w.-]+)\]"
    r"|base\w*\s*=\s*[\w.]+\.from_pretrained\(\s*[\"']([\w.-]+/[\w.-]+)[\"']",
    re.I,
)


def base_model_findings(lines: list[tuple[int, str]], base_models: Any) -> Iterator[Finding]:
    """Lines about the base model that name a repo the metadata does not."""
    declared = [str(b) for b in _as_list(base_models)]
    lowered = {b.lower() for b in declared}
    for number, line in lines:
        if not _BASE_LINE.search(line):
            continue
        for match in _MENTION.finditer(line):
            named = next(group for group in match.groups() if group).rstrip(".")
            if not declared:
                message = (
                    f"body names base model {named!r}; add base_model: {named} to the metadata"
                )
                yield number, "warning", message
            elif named.lower() not in lowered:
                message = (
                    f"body names base model {named!r} but the metadata has {', '.join(declared)}"
                )
                yield number, "error", message


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


_PARAMS = re.compile(
    r"(\d+(?:\.\d+)?)\s?(b|m|billion|million)\b[- ]?(?:parameters?|params?)\b", re.I
)
_SCALE = {"b": 1e9, "billion": 1e9, "m": 1e6, "million": 1e6}


def parameter_findings(prose: list[tuple[int, str]]) -> Iterator[Finding]:
    """Prose that states different model sizes (adapter sizes excepted)."""
    first: tuple[float, str, int] | None = None
    for number, line in prose:
        if re.search(r"trainable|adapter|lora", line, re.I):
            continue
        for match in _PARAMS.finditer(line):
            count = float(match.group(1)) * _SCALE[match.group(2).lower()]
            if first is None:
                first = (count, match.group(0), number)
            elif abs(count - first[0]) > 0.05 * first[0]:
                yield (
                    number,
                    "warning",
                    f"{match.group(0)!r} contradicts {first[1]!r} on line {first[2]}",
                )
