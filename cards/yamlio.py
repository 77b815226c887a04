"""YAML through libyaml when PyYAML has it: the pure-Python parser takes ~0.4 s on a
card with 100 scores, libyaml a few ms. Same safe subset either way.

``line_map`` walks PyYAML's node tree to record the line of every key and list item: the
one YAML path-to-line locator, how a schema error at
``model-index[0].results[2].metrics[0].value`` becomes ``README.md:31`` and one at
``merge.shard_size`` becomes ``release.yaml:12``.

Bounds: every YAML or text file the tools read is read through ``read_bounded`` (at most
``MAX_TEXT_BYTES``; ``/dev/zero`` is refused after that many bytes, not read whole), and
every YAML document is composed first and refused when its aliases expand it past
``MAX_EXPANDED_NODES`` (an alias bomb: nine levels of nine aliases is 387 million nodes
for any walker of the tree, from a 300-byte file).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


MAX_TEXT_BYTES = 16 * 2**20
"""The largest YAML or text file read (a card, a results file): far above any real one."""
MAX_EXPANDED_NODES = 100_000
"""Nodes a YAML document may add through aliases to those it holds as written."""


MAX_DEPTH = 100
"""Levels of nesting a YAML document may have; a card's model-index has six."""


class YamlTooLarge(yaml.MarkedYAMLError):
    """A YAML document whose aliases expand past ``MAX_EXPANDED_NODES``, or nested
    deeper than ``MAX_DEPTH``: a ``YAMLError``, so every caller reports it as YAML it cannot use."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem=problem)

    def __str__(self) -> str:
        return str(self.problem)


class TextTooLarge(OSError):
    """A file past the size limit (an ``OSError``: callers report it as unreadable)."""


def read_bounded(path: str | Path, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path``, refused (``TextTooLarge``) past ``limit`` bytes."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TextTooLarge(0, f"larger than {limit // 2**20} MiB, not a file to read whole")
    return data.decode("utf-8")


def load(text: str, loader: type = _Loader) -> Any:
    return load_with_nodes(text, loader)[0]


def load_with_nodes(text: str, loader: type = _Loader) -> tuple[Any, yaml.Node | None]:
    """The data and its node tree (with line marks), from a single parse; refused
    (``YamlTooLarge``) when aliases would expand it past ``MAX_EXPANDED_NODES``."""
    aliases = _check_depth(text, loader)
    parser = loader(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return None, None
        if aliases:
            check_expansion(node)
        return parser.construct_document(node), node
    finally:
        parser.dispose()


def _check_depth(text: str, loader: type) -> bool:
    """Refuse nesting deeper than ``MAX_DEPTH``, from the parser's events (a flat pass):
    composing ``[[[[…`` recurses once per level, in C for libyaml, past the stack.
    Returns whether the document uses aliases."""
    parser = loader(text)
    aliases = False
    try:
        depth = 0
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.AliasEvent):
                aliases = True
            elif isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlTooLarge(f"nested more than {MAX_DEPTH} levels deep: refused")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        parser.dispose()
    return aliases


def check_expansion(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> None:
    """Refuse a tree whose aliases make it larger than ``limit`` nodes once expanded (what
    a walker of the data or of the nodes visits), or that refers to itself."""
    sizes: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > limit + distinct:  # past what the text itself holds
                raise YamlTooLarge(
                    f"aliases expand the document past {limit:,} values: refused (an alias bomb?)"
                )
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlTooLarge("an alias refers to a node that holds it (a recursive alias)")
        open_nodes.add(key)
        distinct += 1
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


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
