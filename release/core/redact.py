"""One rule for secrets: what any text leaving model-release (terminal, logs, files,
the Hub's echoed errors) passes through first."""

from __future__ import annotations

import os
import re

_TOKEN_PATTERN = re.compile(r"hf_[A-Za-z0-9]{20,}")


def redact(text: str) -> str:
    """Hide the current HF_TOKEN and anything shaped like a Hub token."""
    token = os.environ.get("HF_TOKEN")
    if token and len(token) >= 4:
        text = text.replace(token, "***")
    return _TOKEN_PATTERN.sub("hf_***", text)
