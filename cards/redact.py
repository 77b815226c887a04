"""One rule for secrets: what any text leaving model-release (terminal, logs, files,
the Hub's or GitHub's echoed errors) passes through first.

It lives here, in the lowest package, so that the cards' own commands (``card build``,
which imports nothing of ``release``) write through it too; ``release.core.redact`` is
the pipeline's name for it."""

from __future__ import annotations

import os
import re

SECRET_VARIABLES = ("HF_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")
"""The environment's tokens: the Hub's, and GitHub's for following a workflow run."""

_TOKEN_PATTERNS = (
    (re.compile(r"hf_[A-Za-z0-9]{20,}"), "hf_***"),
    (re.compile(r"\b(gh[pousr])_[A-Za-z0-9]{20,}"), r"\1_***"),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), "github_pat_***"),
)


def redact(text: str) -> str:
    """Hide the current tokens and anything shaped like a Hub or GitHub token."""
    for variable in SECRET_VARIABLES:
        token = os.environ.get(variable)
        if token and len(token) >= 4:
            text = text.replace(token, "***")
    for pattern, replacement in _TOKEN_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


_CREDENTIAL_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s@]+@", re.I)


def secret_in(text: str) -> str | None:
    """What in ``text`` is a secret, in words (never the secret): the token in use, a
    string shaped like a Hub or GitHub token, or a URL carrying credentials."""
    for variable in SECRET_VARIABLES:
        token = os.environ.get(variable)
        if token and len(token) >= 8 and token in text:
            return f"the token in {variable}"
    if any(pattern.search(text) for pattern, _ in _TOKEN_PATTERNS):
        return "a token"
    if _CREDENTIAL_URL.search(text):
        return "a URL with credentials (user:password@ or token@)"
    return None
