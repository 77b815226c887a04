"""One rule for secrets: what any text leaving model-release (terminal, logs, files,
the Hub's or GitHub's echoed errors) passes through first."""

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
