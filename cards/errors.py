"""The one exception cards/ raises on purpose.

``CardError`` is a ``ValueError`` so library callers can catch it either way. Its
message is one line: what is wrong, where, and what to do next. The CLI prints it
as is, without a traceback.
"""

from __future__ import annotations


class CardError(ValueError):
    """A card, a results file or a card spec that cannot be used as given."""

    exit_code = 2
