"""Write a changed spec back into the release.yaml a person wrote, keeping their file.

The wizard edits a spec and saves it so the CLI can repeat the release. Writing the
spec out afresh would drop the comments, the key order, the flow lists and the folded
paragraphs of a hand-written file. Instead the old file is loaded round-trip
(ruamel.yaml) and only the settings whose values changed are replaced or added, and
a setting cleared to nothing loses its line; everything else keeps its bytes. If the
edited text would not read back as the new spec (a YAML corner), a fresh file is
written instead: correct settings come before kept comments.
"""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from release.core.errors import InputError
from release.spec.schema import ReleaseSpec, parse_spec


def spec_text(spec: ReleaseSpec, path: Path, *, unsaved_text: str | None = None) -> str:
    """The text to save ``spec`` as at ``path``: the file there with only the changed
    settings edited. ``unsaved_text`` stands in for a file not written yet (the commented
    starter spec the wizard began from). A fresh text when there is neither, or when the
    old text no longer parses."""
    try:
        old_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old_text = unsaved_text
    except (OSError, UnicodeDecodeError):
        old_text = None
    if old_text is not None:
        try:
            text = _edited(old_text, parse_spec(old_text, path), spec, path.parent)
            if parse_spec(text, path).model_dump() == spec.model_dump():  # the settings
                return text
        except (InputError, YAMLError):  # no longer a valid spec, or a YAML corner
            pass
    return spec.to_yaml(path.parent)


def _edited(old_text: str, old: ReleaseSpec, new: ReleaseSpec, base_dir: Path) -> str:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 2**31  # never fold a line: an unchanged long value keeps its bytes
    document, sequence_indent, sequence_offset = load_yaml_guess_indent(old_text, yaml=yaml)
    mapping_indent = _mapping_indent(old_text)
    if sequence_offset is None:  # no block list in the file: write new ones as `- x`
        sequence_indent, sequence_offset = mapping_indent, 0
    yaml.indent(mapping=mapping_indent, sequence=sequence_indent, offset=sequence_offset)
    _update(
        document,
        old.to_plain(base_dir, exclude_defaults=False),
        new.to_plain(base_dir, exclude_defaults=False),
        new.to_plain(base_dir),
        top_level=True,
    )
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue()


_KEY_ONLY = re.compile(r"^( *)[^\s#-][^:#]*:\s*(#.*)?$")


def _mapping_indent(text: str) -> int:
    """How far the file indents a mapping under its key (ruamel rewrites every line's
    indentation with one setting, so it must be the file's own); 2 if nothing nests."""
    lines = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    for line, following in itertools.pairwise(lines):
        key = _KEY_ONLY.match(line)
        inner = len(following) - len(following.lstrip(" "))
        if key and inner > len(key.group(1)) and not following.lstrip().startswith("-"):
            return inner - len(key.group(1))
    return 2


def _update(
    node: CommentedMap,
    old: dict[str, Any],
    new: dict[str, Any],
    written: dict[str, Any],
    *,
    top_level: bool = False,
) -> None:
    """Edit ``node`` (the file's mapping) where ``new`` differs from ``old``; ``written``
    is ``new`` without its defaults, what a section the file lacks gets."""
    for key, value in new.items():
        if old.get(key) == value:
            continue
        current = node.get(key)
        if isinstance(value, dict) and isinstance(current, CommentedMap):
            _update(current, old.get(key) or {}, value, written.get(key) or {})
        elif value is None and key in node:  # cleared: `key:` alone would read as null
            _delete(node, key)
        elif key in node:
            node[key] = _styled_like(current, value)
        elif key in written:
            node[key] = written[key]
            if top_level and len(node) > 1:
                node.yaml_set_comment_before_after_key(key, before="\n")


def _delete(node: CommentedMap, key: str) -> None:
    """Drop ``key``'s line. ruamel keeps the blank lines and comments that follow a
    mapping's last line in that line's comment: they go to the line before."""
    keys = list(node)
    comment = node.ca.items.pop(key, [None] * 4)[2]
    del node[key]
    if comment is None or keys[-1] != key or len(keys) < 2:
        return
    following = comment.value.split("\n", 1)[1]  # after the line's own end (and comment)
    previous = node.ca.items.setdefault(keys[-2], [None] * 4)
    if previous[2] is None:
        previous[2] = CommentToken("\n", CommentMark(0))
    previous[2].value += following


def _styled_like(current: Any, value: Any) -> Any:
    """A list written in ``[a, b]`` style stays in that style when its items change."""
    if isinstance(current, CommentedSeq) and isinstance(value, list):
        seq = CommentedSeq(value)
        if current.fa.flow_style():
            seq.fa.set_flow_style()
        return seq
    return value
