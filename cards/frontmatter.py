"""Split a card into YAML front matter and body, keeping line numbers.

The split follows huggingface_hub's ``REGEX_YAML_BLOCK`` (repocard.py), so we see
the same block the Hub sees. ``line_map`` walks PyYAML's node tree to record the
line of every key and list item, which is how a schema error at
``model-index[0].results[2].metrics[0].value`` becomes ``README.md:31``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")

YamlPath = tuple[str | int, ...]


@dataclass
class FrontMatter:
    """``yaml_text`` starts on ``yaml_line``; the body starts on ``body_line`` (1-based)."""

    yaml_text: str | None
    yaml_line: int
    body: str
    body_line: int


@dataclass
class LineMap:
    lines: dict[YamlPath, int] = field(default_factory=dict)
    duplicates: list[tuple[int, str, int]] = field(default_factory=list)

    def line_of(self, path: YamlPath, default: int) -> int:
        """The line of ``path`` or of its nearest mapped parent."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return default


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


def line_map(root: yaml.Node | None, first_line: int) -> LineMap:
    """Lines of every key and item under ``root``, a YAML starting on ``first_line``."""
    result = LineMap()
    if root is not None:
        _walk(root, (), first_line, result)
    return result


def _walk(node: Any, path: YamlPath, offset: int, out: LineMap) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + offset
            if key in seen:
                out.duplicates.append((line, str(key), seen[key]))
            seen[key] = line
            out.lines[(*path, key)] = line
            _walk(value_node, (*path, key), offset, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.lines[(*path, i)] = item.start_mark.line + offset
            _walk(item, (*path, i), offset, out)
