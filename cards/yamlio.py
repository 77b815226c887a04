"""YAML through libyaml when PyYAML has it: the pure-Python parser takes ~0.4 s on a
card with 100 scores, libyaml a few ms. Same safe subset either way.

``line_map`` walks PyYAML's node tree to record the line of every key and list item: the
one YAML path-to-line locator, how a schema error at
``model-index[0].results[2].metrics[0].value`` becomes ``README.md:31`` and one at
``merge.shard_size`` becomes ``release.yaml:12``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def load_with_nodes(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and its node tree (with line marks), from a single parse."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def dump(data: Any) -> str:
    """As huggingface_hub's ``yaml_dump`` writes card metadata: unicode kept, key order kept."""
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False)


YamlPath = tuple[str | int, ...]


@dataclass
class LineMap:
    """Where each part of a YAML document stands: ``lines`` holds the line of every key
    (of every item, in a list), ``values`` the line where each value starts (a nested
    mapping starts below its key), the root's under ``()``."""

    lines: dict[YamlPath, int] = field(default_factory=dict)
    values: dict[YamlPath, int] = field(default_factory=dict)
    duplicates: list[tuple[int, str, int]] = field(default_factory=list)

    def line_of(self, path: YamlPath, default: int) -> int:
        """The line of ``path`` or of its nearest mapped parent."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return default

    def nearest(self, path: YamlPath, *, key: bool) -> int | None:
        """The line of the deepest part of ``path`` that exists: of its key when ``key``,
        else of its value; the root's when no part does."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return (self.lines if key else self.values)[path[:end]]
        return self.values.get(())


def line_map(root: yaml.Node | None, first_line: int) -> LineMap:
    """Lines of every key and item under ``root``, a YAML starting on ``first_line``."""
    result = LineMap()
    if root is not None:
        result.values[()] = root.start_mark.line + first_line
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
            out.values[(*path, key)] = value_node.start_mark.line + offset
            _walk(value_node, (*path, key), offset, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out.lines[(*path, i)] = out.values[(*path, i)] = item.start_mark.line + offset
            _walk(item, (*path, i), offset, out)
