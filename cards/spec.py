"""Read ``card.yaml`` (metadata and prose) and ``facts.json`` into a ``CardContext``.

``card.yaml`` is flat: the Hub metadata keys of ``CardMetadata`` (``license``,
``base_model``, ``model-index``...) next to the context keys of ``CardContext``
(``repo_id``, ``summary``, ``limitations``, ``citations``...). Unknown keys are
errors, so ``licence:`` is caught here rather than published.

Two keys name other cards, by path relative to card.yaml: ``base_model_card`` (the
base model's README.md) and ``dataset_cards`` (the datasets' README.md files). The
BibTeX those cards ask to be cited with is cited in this card (``cards.card_bibtex``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cards import yamlio
from cards.card_bibtex import card_file_citations
from cards.errors import CardError, invalid
from cards.evals import load_results
from cards.measured import MeasuredFacts
from cards.render import CardContext
from cards.schema import METADATA_KEYS, CardMetadata


def load_context(
    metadata_path: Path,
    results: Iterable[Path] = (),
    baseline: Iterable[Path] = (),
    facts_path: Path | None = None,
) -> CardContext:
    spec = _load(metadata_path, yamlio.load, "YAML")
    if not isinstance(spec, dict):
        raise CardError(f"{metadata_path}: expected a mapping of card fields")
    facts = _load(facts_path, json.loads, "JSON") if facts_path else {}
    if not isinstance(facts, dict):
        raise CardError(f"{facts_path}: expected a JSON object of facts")
    try:
        measured = MeasuredFacts.model_validate(facts)
    except ValidationError as error:
        raise invalid(str(facts_path), error) from error
    cited = _cited_cards(spec, metadata_path)
    metadata = {k: v for k, v in spec.items() if k in METADATA_KEYS}
    context: dict[str, Any] = {k: v for k, v in spec.items() if k not in METADATA_KEYS}
    if cited:
        context["citations"] = [*cited, *(context.get("citations") or [])]
    try:
        return CardContext(
            metadata=CardMetadata.model_validate(metadata),
            facts=measured,
            records=load_results(results),
            baseline=load_results(baseline),
            **context,
        )
    except ValidationError as error:
        raise invalid(str(metadata_path), error) from error
    except TypeError as error:  # a non-string key at the top of card.yaml
        raise CardError(f"{metadata_path}: {error}") from error


def _cited_cards(spec: dict, metadata_path: Path) -> list[str]:
    """BibTeX from the cards named by ``base_model_card`` and ``dataset_cards`` (both
    taken out of ``spec``), base model first."""
    base = spec.pop("base_model_card", None)
    datasets = spec.pop("dataset_cards", None) or []
    paths = ([base] if base else []) + (datasets if isinstance(datasets, list) else [datasets])
    cited = []
    for path in paths:
        if not isinstance(path, str):
            raise CardError(f"{metadata_path}: card paths must be strings, not {path!r}")
        cited += card_file_citations(metadata_path.parent / path)
    return cited


def _load(path: Path, parse, kind: str) -> Any:
    try:
        return parse(yamlio.read_bounded(path))
    except OSError as error:
        raise CardError(f"{path}: cannot read ({error.strerror})") from error
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else getattr(error, "lineno", None)
        where = f"{path}:{line}" if line else str(path)
        raise CardError(
            f"{where}: invalid {kind}: {getattr(error, 'problem', None) or error}"
        ) from error
