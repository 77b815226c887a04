"""`card check` on cards shaped like real public ones (tests/cards_corpus/cards/): each
prints exactly its sidecar, and huggingface_hub reads every card's metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from typer.testing import CliRunner

from cards.cli import app

CORPUS = Path(__file__).parent / "cards_corpus" / "cards"
CARDS = sorted(CORPUS.glob("*.md"))


def test_the_corpus_is_large_enough_and_every_card_has_a_sidecar():
    assert len(CARDS) >= 15
    assert {p.stem for p in CORPUS.glob("*.expected")} == {p.stem for p in CARDS}


@pytest.mark.parametrize("card", CARDS, ids=lambda p: p.stem)
def test_card_check_says_exactly_what_the_sidecar_says(card, monkeypatch):
    monkeypatch.chdir(CORPUS)
    result = CliRunner().invoke(app, ["check", card.name])
    expected = card.with_suffix(".expected").read_text(encoding="utf-8")
    assert result.stdout == expected
    assert result.exit_code == (1 if ": error: " in expected else 0)


@pytest.mark.parametrize("card", CARDS, ids=lambda p: p.stem)
def test_huggingface_hub_reads_each_card(card):
    """What lint accepts in the metadata, the Hub's own client parses."""
    parsed = ModelCard.load(card, ignore_metadata_errors=False)
    if "model-index" in parsed.data.to_dict():
        model_index_to_eval_results(parsed.data.to_dict()["model-index"])


def test_many_accuracies_of_one_dataset_are_valid_when_named_apart():
    card = ModelCard.load(CORPUS / "multilingual_xnli_per_language.md")
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert len({r.metric_name for r in results}) == len(results) == 15
    assert {r.metric_type for r in results} == {"accuracy"}
