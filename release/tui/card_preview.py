"""The model card as the card stage would write it now, with its problems, for the form.

The same calls as the card stage (``release.report.card_context`` and ``cards.render``), but
a problem is returned rather than raised: a card that fails its own lint is still shown,
with every problem and the form field it concerns.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from cards.errors import CardError
from cards.lint import Problem, lint_card
from release.core.manifest import Manifest
from release.spec.schema import ReleaseSpec

CARD_PATH = "README.md"


@dataclass(frozen=True)
class CardPreview:
    text: str | None
    problems: list[Problem]


def preview_model_card(spec: ReleaseSpec, manifest: Manifest | None) -> CardPreview:
    from cards.render import render_model_card
    from release.evaluate.scores import release_scores
    from release.report.card_context import card_context

    manifest = manifest or Manifest(name=spec.name, version=spec.version)
    try:
        scores = release_scores(manifest, spec.eval.results, spec.base_dir)
        context = card_context(spec, manifest, "merged", scores)
        text = render_model_card(context, spec.card.template_dir, spec.card.template)
    except ValidationError as error:
        problems = [
            Problem(CARD_PATH, 1, "error", e["msg"].removeprefix("Value error, "), _field(e))
            for e in error.errors()
        ]
        return CardPreview(None, problems)
    except CardError as error:
        return CardPreview(None, [Problem(CARD_PATH, 1, "error", str(error))])
    return CardPreview(text, lint_card(text, CARD_PATH))


def _field(error: dict) -> str | None:
    loc = [part for part in error["loc"] if isinstance(part, str)]
    return loc[0] if loc else None
