"""Model cards: Hub metadata schema, stored eval results, citations, rendering and lint.

Nothing here imports torch, transformers or peft: a card is checked or rebuilt from
the card, the release facts and stored eval results alone, in well under a second.

The modules:

- ``cli``: the ``card check`` and ``card build`` commands (``python -m cards``).
- ``spec``: card.yaml and facts.json into a ``render.CardContext``; ``measured``: the
  typed facts it carries (every measured number a card shows).
- ``render``: the card's kind, front matter and body (the top-level ``templates``
  package, or a release's own template); every card is linted. ``view``: what a
  template sees (``TemplateView``); ``context_docs``: docs/card-context.md from it.
- ``facts``: measured facts as table rows; ``usage``: what the usage snippets load
  a release with (transformers' classes, the GGUF file and its projector).
- eval results: ``records`` (one score, ``EvalRecord``; which dataset ids are Hub ids),
  ``lmeval`` (lm-evaluation-harness files, groups included), ``simple_results`` (YAML
  and CSV), ``evals`` (merging, model-index, ``.eval_results/``), ``baseline`` (the
  base model's score beside each score, and the difference).
- lint: ``lint`` (the entry point), ``schema`` (the Hub's metadata as pydantic models),
  ``card_rules`` (rules across fields: duplicates, licenses), ``body`` (the Markdown
  body against its metadata: tables, base model, BibTeX, parameter counts).
- citations: ``citations`` (parse BibTeX, the methods' own entries), ``card_bibtex``
  (the BibTeX another card, a base model's or a dataset's, asks to be cited with).
- plumbing: ``frontmatter``, ``yamlio``, ``vocab`` (the Hub's closed lists, data/),
  ``errors``, ``redact`` (the one rule for secrets: every file and line written passes
  it, the pipeline's too).
"""
