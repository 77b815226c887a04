"""docs/card-context.md is what ``cards.context_docs`` writes from the typed records."""

from __future__ import annotations

from pathlib import Path

from cards.context_docs import context_docs
from cards.measured import MeasuredFacts
from cards.view import TemplateView

DOCS = Path(__file__).parents[1] / "docs" / "card-context.md"


def test_the_docs_are_generated_from_the_records():
    assert DOCS.read_text(encoding="utf-8") == context_docs(), (
        "docs/card-context.md drifted: python -m cards.context_docs > docs/card-context.md"
    )


def test_every_field_a_template_sees_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    for name in TemplateView.model_fields:
        assert f"| `{name}` |" in text
    for name in MeasuredFacts.model_fields:
        assert f"| `facts.{name}` |" in text
