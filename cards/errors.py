"""The one exception cards/ raises on purpose.

``CardError`` is a ``ValueError`` so library callers can catch it either way. Its
message is one line: what is wrong, where, and what to do next. The CLI prints it
as is, without a traceback.
"""

from __future__ import annotations


class CardError(ValueError):
    """A card, a results file or a card spec that cannot be used as given."""

    exit_code = 2


def invalid(where: str, error) -> CardError:
    """A ``CardError`` naming the first problem of a pydantic ``ValidationError``.

    ``where`` is the file (or file:line); the field path follows it, then the message,
    so a user sees ``results.yaml: results[2].value: Input should be a valid number``.
    """
    first = error.errors()[0]
    path = dotted(first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field; check its spelling"
    more = error.error_count() - 1
    tail = f" (and {more} more)" if more else ""
    return CardError(f"{where}: {path + ': ' if path else ''}{message}{tail}")


def dotted(loc) -> str:
    """``("model-index", 0, "name")`` -> ``model-index[0].name``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
