"""The texts the methods compare, each in its method's normal form.

- ``normal_form``: exact, substring and character n-grams compare Unicode NFKC text,
  case-folded, without punctuation or symbols, whitespace runs as one space.
- ``janitor_test_form`` / ``janitor_training_form``: word n-grams compare as
  lm-eval's ``Janitor`` does (``lm_eval/decontamination/janitor.py``): ASCII letters
  lowered, ``string.punctuation`` deleted, words split on whitespace. The Janitor
  normalizes a test text before it splits it (``register_contaminant``), and a training
  text's words after (``clean``): a training word of punctuation only stays as an empty
  word, so "a , b" is not the 2-gram "a b". Both forms are one line of words joined by
  single spaces, so a word n-gram is a span between spaces (``hashing``).
"""

from __future__ import annotations

import re
import string
import unicodedata

_NOT_WORD = re.compile(r"[^\w\s]+")
_JANITOR_TABLE = bytes.maketrans(string.ascii_uppercase.encode(), string.ascii_lowercase.encode())
_JANITOR_DELETE = string.punctuation.encode()


def normal_form(text: str) -> str:
    """NFKC, case-folded, punctuation and symbols removed (all but letters, digits, the
    underscore and whitespace), whitespace collapsed to single spaces."""
    folded = _NOT_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def _janitor_normalize(text: str) -> str:
    """The Janitor's ``normalize_string``: ASCII letters lowered, ``string.punctuation``
    deleted, nothing else touched. On UTF-8 bytes, where no byte of a non-ASCII
    character is ASCII, so the same as its ``str.translate`` and many times faster."""
    return text.encode().translate(_JANITOR_TABLE, _JANITOR_DELETE).decode()


def janitor_test_form(text: str) -> str:
    """A test text as the Janitor registers it: normalized, then split into words."""
    return " ".join(_janitor_normalize(text).split())


def janitor_training_form(text: str) -> str:
    """A training text as the Janitor cleans it: split into words, each normalized (a
    word of punctuation only is kept, empty)."""
    return _janitor_normalize(" ".join(text.split()))
