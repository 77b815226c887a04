"""Looking for a token everywhere a run could have put it.

A token leaks in more spellings than its own: inside base64 (an Authorization: Basic
header, a data: URL), URL-encoded (a query string), as UTF-16 in a Windows-y file. A
scan looks for all of them, in text and in the bytes of every file under some folders,
and reads GGUF metadata strings with gguf-py's reader (a string there is plain UTF-8
bytes, so the byte scan finds it too; the reader says in which key).
"""

from __future__ import annotations

import base64
import secrets
import string
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote


def random_token(prefix: str = "", length: int = 40) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length - len(prefix)))


def spellings(token: str) -> list[bytes]:
    """The token as bytes in every encoding we look for. Base64 is taken at the three
    alignments a token can have inside a longer encoded string, edges trimmed."""
    raw = token.encode()
    found = [raw, quote(token, safe="").encode(), token.encode("utf-16-le")]
    for shift in range(3):
        # the base64 characters made of the token's bits alone, after ``shift`` bytes
        start, end = -(-8 * shift // 6), 8 * (shift + len(raw)) // 6
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            found.append(encode(b"\0" * shift + raw)[start:end])
    return found


class Scan:
    """Counts what it looked at; ``leaks`` names where a spelling was found."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.patterns = spellings(token)
        self.outputs = 0
        self.leaks: list[str] = []

    def text(self, where: str, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.outputs += 1
        if any(pattern in data for pattern in self.patterns):
            self.leaks.append(where)

    def files(self, *roots: Path) -> None:
        for root in roots:
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    self.text(str(path), path.read_bytes())
                    if path.suffix == ".gguf":
                        self.gguf(path)

    def gguf(self, path: Path) -> None:
        from gguf import GGUFReader, GGUFValueType

        for field in GGUFReader(path).fields.values():
            if GGUFValueType.STRING in field.types:
                for value in _strings(field):
                    self.text(f"{path}: {field.name}", value)

    def many(self, where: str, texts: Iterable[str]) -> None:
        for number, text in enumerate(texts):
            self.text(f"{where} #{number}", text)


def _strings(field) -> list[bytes]:
    return [bytes(field.parts[index]) for index in field.data]
