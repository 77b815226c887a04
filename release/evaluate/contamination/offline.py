"""Nothing downloaded at run time: lm-eval's tasks and Hub datasets are read from local
files and the local cache only."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

_ENVIRONMENT = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """The Hub offline inside: by the environment for libraries imported inside, and by
    their constants for those already imported (they read the environment once)."""
    before = {key: os.environ.get(key) for key in _ENVIRONMENT}
    os.environ.update(_ENVIRONMENT)
    constants = []
    for module, name in (
        ("datasets.config", "HF_HUB_OFFLINE"),
        ("datasets.config", "HF_DATASETS_OFFLINE"),
        ("huggingface_hub.constants", "HF_HUB_OFFLINE"),
    ):
        if module in sys.modules and hasattr(sys.modules[module], name):
            constants.append((sys.modules[module], name, getattr(sys.modules[module], name)))
            setattr(sys.modules[module], name, True)
    try:
        yield
    finally:
        for holder, name, value in constants:
            setattr(holder, name, value)
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
