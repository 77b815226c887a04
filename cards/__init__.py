"""Model cards: Hub metadata schema, stored eval results, citations, rendering and lint.

Nothing here imports torch, transformers or peft: a card is checked or rebuilt from
the card, the release facts and stored eval results alone, in well under a second.
"""
