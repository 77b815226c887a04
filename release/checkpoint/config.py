"""A model folder's config.json: the one reader, and the text model's view of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from release.core.errors import InputError, MissingInputError

TOWERS = ("vision_config", "audio_config")
"""The configs of a multimodal checkpoint's towers, as config.json names them."""


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


def towers(config: dict[str, Any]) -> list[str]:
    """The towers a checkpoint's config carries: ``vision``, ``audio`` (none: a text model)."""
    return [key.removesuffix("_config") for key in TOWERS if isinstance(config.get(key), dict)]


def has_chat_template(model_dir: Path) -> bool:
    """Whether the folder's tokenizer carries a chat template (its own file, or the
    ``chat_template`` key of tokenizer_config.json as older saves have it)."""
    if any((model_dir / name).is_file() for name in ("chat_template.jinja", "chat_template.json")):
        return True
    path = model_dir / "tokenizer_config.json"
    try:
        return "chat_template" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
