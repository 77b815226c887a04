"""A model folder's config.json: the one reader, and the text model's view of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from release.core.errors import InputError, MissingInputError


def read_config(model_dir: Path) -> dict[str, Any]:
    """``model_dir/config.json``, or a one-line error saying what is wrong with it."""
    path = model_dir / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingInputError(f"{path}: missing") from None
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None


def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with a multimodal wrapper's ``text_config`` lifted to the top: what
    a text model's hyperparameters are read from."""
    if isinstance(config.get("text_config"), dict):
        return {**config, **config["text_config"]}
    return config
