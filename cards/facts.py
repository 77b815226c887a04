"""Measured facts as table rows: label and formatted value, a row only where the fact is.

The facts (``cards.measured``) come from the release manifest (or a facts.json); every
field is optional. A row whose fact is missing is left out, so a card never says "None".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel

from cards.measured import LoraFacts, MeasuredFacts, SanityFacts, TrainingFacts


def count(n: int) -> str:
    """134515008 -> '134.5M (134,515,008)'."""
    for size, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.1f}{unit} ({n:,})"
    return f"{n:,}"


def size(n: int) -> str:
    """269030016 -> '269.0 MB (269,030,016 bytes)', decimal units as the Hub shows."""
    for limit, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if n >= limit:
            return f"{n / limit:.1f} {unit} ({n:,} bytes)"
    return f"{n:,} bytes"


def code_list(items: Iterable[str] | str) -> str:
    """Names as code in a table cell; a single string (PEFT's regex form of
    ``target_modules``) as one name, its ``|`` escaped so the row keeps its columns."""
    names = [items] if isinstance(items, str) else items
    return ", ".join("`{}`".format(name.replace("|", "\\|")) for name in names)


def yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


Row = tuple[str, str]
_Spec = list[tuple[str, str, Callable[[Any], str]]]


def _of(model: type[BaseModel], spec: _Spec) -> _Spec:
    """``spec``, whose every key must name a field of ``model`` (checked on import)."""
    unknown = [key for key, _, _ in spec if key not in model.model_fields]
    if unknown:
        raise TypeError(f"{model.__name__} has no field {unknown[0]!r}")
    return spec


MODEL_DETAILS: _Spec = _of(
    MeasuredFacts,
    [
        ("architecture", "Architecture", str),
        ("base_parameters", "Parameters", count),
        ("trainable_parameters", "Trainable (adapter) parameters", count),
        ("dtype", "Weights dtype", lambda v: f"`{v}`"),
        ("context_length", "Context length", lambda v: f"{v:,} tokens"),
        ("vocab_size", "Vocabulary size", lambda v: f"{v:,}"),
        ("towers", "Towers kept", lambda v: ", ".join(v)),
        ("adapter_bytes", "Adapter size", size),
        ("merged_bytes", "Merged model size", size),
        ("base_revision", "Base model revision", lambda v: f"`{v}`"),
        ("adapter_revision", "Adapter (Hub) revision", lambda v: f"`{v}`"),
    ],
)

LORA: _Spec = _of(
    LoraFacts,
    [
        ("r", "LoRA rank (r)", str),
        ("alpha", "LoRA alpha", str),
        ("dropout", "LoRA dropout", str),
        ("target_modules", "Target modules", code_list),
        ("use_rslora", "rsLoRA scaling", yes_no),
        ("use_dora", "DoRA", yes_no),
        ("init_lora_weights", "Initialisation", lambda v: f"`{v}`"),
        ("qlora", "QLoRA (4-bit base)", yes_no),
    ],
)

TRAINING: _Spec = _of(
    TrainingFacts,
    [
        ("epochs", "Epochs", str),
        ("max_steps", "Steps", lambda v: f"{v:,}"),
        ("learning_rate", "Learning rate", lambda v: f"{v:g}"),
        ("batch_size", "Batch size", str),
        ("optimizer", "Optimizer", lambda v: f"`{v}`"),
        ("seed", "Seed", str),
    ],
)


def rows(facts: BaseModel | None, spec: _Spec) -> list[Row]:
    """The rows of ``spec`` whose fact is present (not None)."""
    values = [(label, fmt, getattr(facts, key)) for key, label, fmt in spec] if facts else []
    return [(label, fmt(value)) for label, fmt, value in values if value is not None]


def sanity_rows(sanity: SanityFacts | None) -> list[Row]:
    """The release's own checks (model-release's evaluate stage), as measured."""
    if sanity is None:
        return []
    found: list[Row] = []
    if eq := sanity.equivalence:
        found.append(
            (
                f"Merged model vs base + adapter: top-1 agreement ({eq.positions} positions)",
                f"{eq.top1_agreement:.2%}",
            )
        )
        found.append(
            (
                "Mean logit difference, as a share of the adapter's own effect",
                f"{eq.relative_error:.1%}",
            )
        )
    if sanity.merge_inputs and not eq:
        found.append(
            (
                "Merged model vs base + adapter",
                "not applicable: a merge of several models is none of them "
                "(each is measured beside it under Merge recipe)",
            )
        )
    if ppl := sanity.perplexity:
        found.append(
            (
                f"Perplexity on held-out text ({ppl.tokens:,} tokens): base → fine-tuned",
                f"{ppl.base:.2f} → {ppl.merged:.2f}",
            )
        )
    if smoke := sanity.smoke:
        passed = sum(item.passed for item in smoke)
        found.append(
            ("Chat smoke test (greedy, chat template)", f"{passed} of {len(smoke)} passed")
        )
    return found
