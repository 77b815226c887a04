"""Path inputs: folder-name completion (→ accepts) and checks while you type."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from textual.suggester import Suggester
from textual.validation import ValidationResult, Validator


def shown_path(path: Path | None) -> str:
    """A path as a person would type it here: relative to the current folder if inside."""
    if path is None:
        return ""
    path = Path(os.path.normpath(path))
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


class FolderSuggester(Suggester):
    """Completes the last part of a path to the first matching folder."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        head, sep, prefix = value.rpartition("/")
        folder = Path(os.path.expanduser(head + sep)) if sep else Path(".")
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(folder)
                if entry.is_dir()
                and entry.name.startswith(prefix)
                and entry.name != prefix
                and not entry.name.startswith(".")
            )
        except OSError:
            return None
        return f"{value}{names[0][len(prefix) :]}/" if names else None


class FolderCheck(Validator):
    """A folder that holds ``marker`` (empty allowed when ``optional``)."""

    def __init__(self, marker: str, what: str, *, optional: bool = False) -> None:
        super().__init__()
        self.marker, self.what, self.optional = marker, what, optional

    def validate(self, value: str) -> ValidationResult:
        if not value.strip():
            return self.success() if self.optional else self.failure(f"choose {self.what}")
        path = Path(value).expanduser()
        if not path.is_dir():
            return self.failure(f"{value}: no such folder")
        if not (path / self.marker).is_file():
            return self.failure(f"{value}: no {self.marker} here; not {self.what}")
        return self.success()


class RuleCheck(Validator):
    """A field checked by one of the project's rules (``accepts``), e.g. ``is_repo_id``."""

    def __init__(
        self, accepts: Callable[[str], bool], message: Callable[[str], str], *, optional: bool
    ) -> None:
        super().__init__()
        self.accepts, self.message, self.optional = accepts, message, optional

    def validate(self, value: str) -> ValidationResult:
        if (not value and self.optional) or self.accepts(value):
            return self.success()
        return self.failure(self.message(value))
