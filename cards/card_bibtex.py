"""The BibTeX another card asks to be cited with: a base model's or a dataset's.

A model card usually ends with a "Citation" section holding a fenced ```bibtex block
(or a bare fence that opens with ``@type{``). Every entry of those blocks that parses
cleanly is returned, as written; an entry with errors (an unclosed brace, a missing
required field) is left out, so another card's typo cannot stop a release, and what is
cited is still checked again when the release card is linted.
"""

from __future__ import annotations

from pathlib import Path

from cards import body, yamlio
from cards.citations import parse_bibtex
from cards.errors import CardError
from cards.frontmatter import split


def card_citations(text: str) -> list[str]:
    """BibTeX entries, one string each, of the card ``text``."""
    front = split(text)
    if front is None:  # an unclosed front matter: the whole text is the body
        _, blocks = body.scan(text, 1)
    else:
        _, blocks = body.scan(front.body, front.body_line)
    cited = []
    for block in blocks:
        if not body.is_bibtex(block):
            continue
        entries, problems = parse_bibtex(block.text)
        broken = {p.line for p in problems if p.severity == "error"}
        cited += [entry.text for entry in entries if entry.line not in broken]
    return cited


def card_file_citations(path: Path) -> list[str]:
    """``card_citations`` of a card on disk; an unreadable file is a ``CardError``."""
    try:
        return card_citations(yamlio.read_bounded(path))
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise CardError(f"{path}: cannot read card ({reason})") from error
