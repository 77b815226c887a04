"""Paths in release.yaml: relative to the file's folder, made absolute while it loads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base_dir = (info.context or {}).get("base_dir")
    value = value.expanduser()
    if base_dir is not None and not value.is_absolute():
        value = Path(base_dir) / value
    return Path(os.path.normpath(Path(value).absolute()))


SpecPath = Annotated[Path, AfterValidator(_resolve_path)]
