"""The Hub client: huggingface_hub's ``HfApi`` at the endpoint and with the token of now."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from release.core.errors import WorkError

if TYPE_CHECKING:
    from huggingface_hub import HfApi


def hub_api(*, token_required: bool = True) -> HfApi:
    """HfApi at $HF_ENDPOINT, read now (huggingface_hub reads it once, at import).

    Without ``token_required`` it may have no token: enough to read a public repo.
    """
    from huggingface_hub import HfApi, get_token

    if token_required and get_token() is None:
        raise WorkError(
            "no Hugging Face token",
            hint="set HF_TOKEN to a token with write access, or run `hf auth login`",
        )
    endpoint = os.environ.get("HF_ENDPOINT", "").rstrip("/") or None
    return HfApi(endpoint=endpoint)
