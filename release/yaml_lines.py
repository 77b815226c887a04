"""Find the line of a field in a YAML text, to locate validation errors.

pydantic reports an error at a path such as ``("merge", "shard_size")``; PyYAML's
composed node tree still knows where every key and value started. Walking the path down
the node tree gives the line a person should look at.
"""

from __future__ import annotations

import difflib

import yaml
from pydantic import BaseModel


class YamlLocator:
    def __init__(self, text: str, model: type[BaseModel] | None = None) -> None:
        try:
            self._root = yaml.compose(text)
        except yaml.YAMLError:
            self._root = None
        self._model = model

    def line_of(self, loc: tuple, *, key: bool = False) -> int | None:
        """1-based line of the value at ``loc`` (of its key when ``key``), or of the
        deepest part of the path that exists."""
        node, key_node = self._root, None
        for part in loc:
            child = self._child(node, part)
            if child is None:
                break
            key_node, node = child
        target = key_node if key and key_node is not None else node
        return target.start_mark.line + 1 if target is not None else None

    def suggestion(self, loc: tuple) -> str:
        """' (did you mean 'x'?)' for a misspelt key, from the fields the model knows."""
        fields = self._fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
        return f" (did you mean {close[0]!r}?)" if close else ""

    @staticmethod
    def _child(node, part):
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    return key_node, value_node
        if (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            return None, node.value[part]
        return None

    def _fields_at(self, loc: tuple) -> list[str]:
        model = self._model
        for part in loc:
            if model is None:
                return []
            info = model.model_fields.get(str(part))
            annotation = getattr(info, "annotation", None)
            model = annotation if isinstance(annotation, type) else None
            if model is not None and not issubclass(model, BaseModel):
                model = None
        return list(model.model_fields) if model is not None else []
