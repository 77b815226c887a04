"""Split a card into YAML front matter and body, keeping line numbers.

The split follows huggingface_hub's ``REGEX_YAML_BLOCK`` (repocard.py), so we see
the same block the Hub sees; ``cards.yamlio.line_map`` then says on which line of the
card each key of the front matter stands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")


@dataclass
class FrontMatter:
    """``yaml_text`` starts on ``yaml_line``; the body starts on ``body_line`` (1-based)."""

    yaml_text: str | None
    yaml_line: int
    body: str
    body_line: int


def split(text: str) -> FrontMatter | None:
    """The front matter and body; ``None`` when a ``---`` block is opened but not closed."""
    match = _BLOCK.search(text)
    if match:
        return FrontMatter(
            yaml_text=match.group(2),
            yaml_line=match.group(1).count("\n") + 1,
            body=text[match.end() :],
            body_line=text[: match.end()].count("\n") + 1,
        )
    if text.lstrip().startswith("---"):
        return None
    return FrontMatter(yaml_text=None, yaml_line=1, body=text, body_line=1)
