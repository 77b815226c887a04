"""The model card as the card stage would write it now, with its problems, for the form.

The same calls as the card stage (``release.report.card_context`` and ``cards.render``), but
a problem is returned rather than raised: a card that fails its own lint is still shown,
with every problem and the form field it concerns.

A Markdown table wider than the preview is shown as a list (``tables_as_lists``): a row
per item, each cell after its column's name, so no cell is cut to "…" at 80 columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError
from rich.cells import cell_len

from cards.errors import CardError
from cards.lint import Problem, lint_card
from release.core.manifest import Manifest
from release.spec.schema import ReleaseSpec

CARD_PATH = "README.md"


@dataclass(frozen=True)
class CardPreview:
    text: str | None
    problems: list[Problem]


def preview_model_card(spec: ReleaseSpec, manifest: Manifest | None) -> CardPreview:
    from cards.render import render_model_card
    from release.evaluate.scores import release_scores
    from release.report.card_context import card_context
    from release.report.card_settings import CardSettings

    manifest = manifest or Manifest(name=spec.name, version=spec.version)
    try:
        scores = release_scores(manifest, spec.eval.results, spec.base_dir)
        context = card_context(CardSettings.of(spec), manifest, "merged", scores, spec.workspace)
        text = render_model_card(context, spec.card.template_dir, spec.card.template)
    except ValidationError as error:
        problems = [
            Problem(CARD_PATH, 1, "error", e["msg"].removeprefix("Value error, "), _field(e))
            for e in error.errors()
        ]
        return CardPreview(None, problems)
    except CardError as error:
        return CardPreview(None, [Problem(CARD_PATH, 1, "error", str(error))])
    return CardPreview(text, lint_card(text, CARD_PATH))


def _field(error: dict) -> str | None:
    loc = [part for part in error["loc"] if isinstance(part, str)]
    return loc[0] if loc else None


_SEPARATOR = re.compile(r"^\|(\s*:?-{3,}:?\s*\|)+\s*$")
_CELL_BORDER = re.compile(r"(?<!\\)\|")


def tables_as_lists(markdown: str, width: int) -> str:
    """``markdown`` with each table wider than ``width`` cells written as a list: its
    first cell in bold, then ``column: value`` for the others that are not empty. Tables
    that fit, and anything inside a code block, are left as they are."""
    lines, out, fenced, i = markdown.split("\n"), [], False, 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fenced = not fenced
        is_table = (
            not fenced
            and line.startswith("|")
            and i + 1 < len(lines)
            and _SEPARATOR.match(lines[i + 1])
        )
        if not is_table:
            out.append(line)
            i += 1
            continue
        end = i + 2
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        header, rows = _cells(line), [_cells(row) for row in lines[i + 2 : end]]
        out += lines[i:end] if _width([header, *rows]) <= width else _as_list(header, rows)
        i = end
    return "\n".join(out)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in _CELL_BORDER.split(line.strip())[1:-1]]


def _width(rows: list[list[str]]) -> int:
    """The cells a table takes when no cell wraps: its widest cells, borders and padding."""
    columns = max(len(row) for row in rows)
    widest = [max(cell_len(row[c]) if c < len(row) else 0 for row in rows) for c in range(columns)]
    return sum(widest) + 3 * columns + 1


def _as_list(header: list[str], rows: list[list[str]]) -> list[str]:
    items = []
    for row in rows:
        first, *rest = row or [""]
        named = [
            f"{name}: {cell}" if name else cell
            for name, cell in zip(header[1:], rest, strict=False)
            if cell
        ]
        if len(header) == 2 and not header[0]:  # a facts table: a label, its value
            items.append(f"- **{first}**: {rest[0]}" if rest and rest[0] else f"- **{first}**")
        else:
            items.append(f"- **{first}**" + (f"  \n  {' · '.join(named)}" if named else ""))
    return items
