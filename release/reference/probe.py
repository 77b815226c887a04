"""The probe: the prompts whose next-token distributions the GGUF files are compared on,
the prompt a file answers greedily for a person to read, and the digest that keys them.

A change to any of it (or to how many top logits are kept, or to how the held-out text
is cut) changes ``PROBE.digest``,
which the evaluate stage and the GGUF stage are keyed on: both run again. Readers take
``probe.PROBE`` when they run (not at import), so a test can swap it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from release.reference.heldout import CHUNK_TOKENS, HELDOUT_TOKENS


@dataclass(frozen=True)
class ProbeSet:
    prompts: tuple[str, ...]
    smoke_prompt: str
    smoke_tokens: int
    """New tokens of the greedy answer to ``smoke_prompt``."""
    top_k: int
    """Logits kept per position: the reference's top tokens, the rest as one outcome
    (``store``)."""
    name: str = "probe"
    """The prompts' set in the reference file."""
    heldout_top_k: int = 1024
    """Logits kept per position of the held-out chunks (``heldout``), from which the
    GGUF stage measures each quant's KL divergence (``release.gguf.quality``): at 256 the
    median read 1.3% under llama-perplexity's, at 1,024 every figure is within 0.13%."""
    heldout_chunk: int = CHUNK_TOKENS
    """The held-out chunks' tokens (llama-perplexity's ``n_ctx``)."""
    heldout_tokens: int = HELDOUT_TOKENS
    """The held-out text's tokens read, at most."""

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


PROBE = ProbeSet(
    prompts=(
        "The capital of France is Paris. The capital of Italy is Rome, and the capital of "
        "Spain is Madrid. Paris is famous for the Eiffel Tower, which was built in 1889 for "
        "the World's Fair.",
        "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + "
        "fibonacci(n - 2)\n\n\nfor i in range(10):\n    print(i, fibonacci(i))\n",
        "Photosynthesis is the process by which green plants turn sunlight, water and carbon "
        "dioxide into glucose and oxygen. It takes place mainly in the leaves, inside the "
        "chloroplasts.",
        "Once upon a time, in a small village by the sea, there lived an old fisherman who "
        "went out every morning before dawn. One day he caught a fish that could speak, and "
        "it asked him to let it go.",
        "To make a cup of tea, boil fresh water, pour it over the tea leaves and let them "
        "steep for three to five minutes. Then remove the leaves and add milk or lemon.",
        "The water cycle describes how water evaporates from the oceans, forms clouds, falls "
        "as rain or snow, and flows back to the sea through rivers and groundwater.",
    ),
    smoke_prompt="What is the capital of France? Answer in one sentence.",
    smoke_tokens=24,
    top_k=64,
)
