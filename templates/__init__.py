"""The files model-release writes from a template, in one folder a user can read and copy.

- ``model_card.md.j2``: the model card (README.md) of the merged model, the adapter and a
  model merge; ``gguf_card.md.j2``: the GGUF repo's card; ``_macros.md.j2``,
  ``_merge_recipe.md.j2``, ``_contamination.md.j2``: the pieces they share. jinja2,
  rendered by ``cards.render`` (sandboxed, ``StrictUndefined``) from the card's context
  (docs/card-context.md lists its fields). A release's own template
  (``card.template`` in release.yaml) extends these under the name
  ``model-release/<file>``, e.g. ``{% extends "model-release/model_card.md.j2" %}``.
- ``starter-release.yaml``: ``model-release init``'s commented release.yaml
  (``str.format`` fields, filled by ``release.spec.starter``).
- ``release-workflow.yml``: the GitHub Actions workflow ``model-release publish``
  writes (``__ACTION__`` and ``__CONFIG__`` filled by ``release.publish.tag_push``).

This package holds files only: it imports nothing of the project, so both ``cards`` and
``release`` read it. The wheel ships them as package data (pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent
"""The folder of the templates: jinja2's loader reads the card templates from it."""


def read(name: str) -> str:
    """The text of the template ``name`` (a file of this folder)."""
    return (FOLDER / name).read_text(encoding="utf-8")
