"""Find the line of a field in a YAML text, to locate validation errors.

pydantic reports an error at a path such as ``("merge", "shard_size")``; cards'
``line_map`` (the one YAML locator) knows where every key and value of the text starts.
The deepest part of the path that exists gives the line a person should look at; a
misspelt key gets the field the schema would have taken.
"""

from __future__ import annotations

import difflib

import yaml
from pydantic import BaseModel

from cards.yamlio import line_map


class YamlLocator:
    def __init__(self, text: str, model: type[BaseModel] | None = None) -> None:
        try:
            root = yaml.compose(text)
        except yaml.YAMLError:
            root = None
        self._lines = line_map(root, first_line=1)
        self._model = model

    def line_of(self, loc: tuple, *, key: bool = False) -> int | None:
        """1-based line of the value at ``loc`` (of its key when ``key``), or of the
        deepest part of the path that exists."""
        return self._lines.nearest(
            tuple(str(p) if not isinstance(p, int) else p for p in loc), key=key
        )

    def suggestion(self, loc: tuple) -> str:
        """' (did you mean 'x'?)' for a misspelt key, from the fields the model knows."""
        fields = self._fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
        return f" (did you mean {close[0]!r}?)" if close else ""

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
