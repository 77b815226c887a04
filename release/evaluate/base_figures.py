"""What the sanity eval measures of the base alone, kept between releases of that base.

The base's perplexity on the held-out text and its logits on the probe prompts (what the
adapter's effect is measured against) are the same for every adapter released on that
base: a second adapter on the same base reads them here instead of running the base's
passes again (at 3.8B on a 2-core CPU, a perplexity pass is minutes).

They are kept under ``$MODEL_RELEASE_EVAL_CACHE``, else ``<cache_dir()>/base-figures``
(``release.core.paths``), one safetensors file per key: the probe logits as float32
tensors, the perplexity in its metadata. The key is everything the figures depend on: the
base's fingerprint (as intake recorded it, ``release.checkpoint.fingerprint``), the token
ids of the held-out text's sequences (so the text, the tokenizer and how it is cut) and of
the probe prompts, the dtype and device the eval runs in, and torch's and transformers'
versions.
A base resized for an adapter's added tokens is never kept (``release.evaluate.checks``):
transformers draws its new rows at random.
A file that cannot be read is a miss, written again; files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from release.core.files import atomic_write_bytes
from release.core.paths import cache_dir

if TYPE_CHECKING:
    import torch

CACHE_ENV = "MODEL_RELEASE_EVAL_CACHE"
FORMAT = "base-figures/3"
"""2: the perplexity is read over the held-out text's chunks (was: windows of 256); 3: the
probe prompts' logits come from one padded batch (float noise apart from one at a time)."""


def cache_root() -> Path:
    """$MODEL_RELEASE_EVAL_CACHE, else ``cache_dir()/base-figures``."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit)
    return cache_dir() / "base-figures"


@dataclass(frozen=True)
class BaseKey:
    """What the base's figures depend on."""

    fingerprint: str
    heldout_sha256: str
    """sha256 of the held-out text's sequences (their token ids as JSON, as the eval
    reads them)."""
    probe_ids: tuple[tuple[int, ...], ...]
    dtype: str
    device: str
    torch: str
    transformers: str

    @property
    def digest(self) -> str:
        text = json.dumps({"format": FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def base_key(
    fingerprint: str,
    heldout: list[list[int]],
    probe_ids: list[list[int]],
    dtype: str,
    device: str,
) -> BaseKey:
    import torch
    import transformers

    return BaseKey(
        fingerprint=fingerprint,
        heldout_sha256=hashlib.sha256(json.dumps(heldout).encode()).hexdigest(),
        probe_ids=tuple(tuple(prompt) for prompt in probe_ids),
        dtype=dtype,
        device=device,
        torch=torch.__version__,
        transformers=transformers.__version__,
    )


@dataclass(frozen=True)
class BaseFigures:
    """The base's perplexity on the held-out text and its logits on the probe prompts
    (float32, on the CPU, one tensor per prompt)."""

    perplexity: float
    probe_logits: list[torch.Tensor]


def _path(key: BaseKey) -> Path:
    return cache_root() / f"{key.digest}.safetensors"


def read_figures(key: BaseKey) -> BaseFigures | None:
    """The figures an earlier eval kept under ``key``, or None."""
    from safetensors import SafetensorError, safe_open

    path = _path(key)
    if not path.is_file():
        return None
    try:
        with safe_open(path, framework="pt") as kept:
            metadata = kept.metadata() or {}
            logits = [kept.get_tensor(f"probe.{index}") for index in range(len(key.probe_ids))]
        return BaseFigures(float(metadata["perplexity"]), logits)
    except (SafetensorError, OSError, KeyError, ValueError):
        return None


def write_figures(key: BaseKey, figures: BaseFigures) -> None:
    from safetensors.torch import save

    tensors = {f"probe.{index}": t.contiguous() for index, t in enumerate(figures.probe_logits)}
    metadata = {"perplexity": repr(figures.perplexity), "key": json.dumps(asdict(key))}
    atomic_write_bytes(_path(key), save(tensors, metadata=metadata))
