"""model-index from results files lm-evaluation-harness wrote itself, read back by
huggingface_hub: every (task, metric, filter) under its own task with its own value.

The file (tests/cards_corpus/lmeval/, see its README) holds local-data tasks (lm-eval
records ``dataset_path: json`` for each), a group with its two subtasks, a
generate_until task with two filters and a perplexity task.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from cards.evals import eval_results_files, load_results
from cards.render import CardContext, render_model_card
from cards.schema import CardMetadata

CORPUS = Path(__file__).parent / "cards_corpus" / "lmeval"
FILES = sorted(CORPUS.glob("results_*.json"))


def scores_in(raw: dict) -> dict[tuple[str, str, str], float]:
    """(task, metric, filter) -> value, straight from the harness's JSON."""
    tables = {**raw.get("groups", {}), **raw["results"]}
    return {
        (task, key.split(",")[0], key.split(",")[1]): value
        for task, scores in tables.items()
        for key, value in scores.items()
        if "," in key and "_stderr" not in key and isinstance(value, int | float)
    }


def published(tmp_path: Path, path: Path):
    """The card model-release builds from ``path``, as huggingface_hub reads it."""
    context = CardContext(
        metadata=CardMetadata(license="apache-2.0", base_model=["HuggingFaceTB/SmolLM2-135M"]),
        repo_id="me/smollm2-local",
        records=load_results([path]),
    )
    readme = tmp_path / "README.md"
    readme.write_text(render_model_card(context))
    card = ModelCard.load(readme)
    name, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    return card, name, results


def test_the_corpus_has_what_the_issue_asks_for():
    [path] = FILES
    raw = json.loads(path.read_text())
    assert raw["lm_eval_version"] == "0.4.13"
    assert {c["dataset_path"] for c in raw["configs"].values()} == {"json"}
    assert raw["group_subtasks"]["local_trivia"] == ["local_capitals", "local_colours"]
    assert {"strict-match", "flexible-extract"} <= {f for _, _, f in scores_in(raw)}
    assert ("local_prose_ppl", "word_perplexity", "none") in scores_in(raw)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_score_lands_under_its_own_task(tmp_path, path):
    want = scores_in(json.loads(path.read_text()))
    _, name, results = published(tmp_path, path)
    assert name == "smollm2-local"
    got = {
        (r.dataset_type, r.metric_type, r.metric_config or "none"): r.metric_value for r in results
    }
    assert got == want  # nothing lost, nothing merged, each value its own
    assert len(results) == len(want)
    assert "json" not in {r.dataset_type for r in results}
    # one model-index row per task: no two tasks share the Hub's grouping key
    rows = {r.unique_identifier: r.dataset_type for r in results}
    assert len(rows) == len({r.dataset_type for r in results})


def test_a_group_is_shown_once_as_a_group(tmp_path):
    [path] = FILES
    card, _, results = published(tmp_path, path)
    names = {r.dataset_type: r.dataset_name for r in results}
    assert names["local_trivia"] == "local_trivia (group of 2 tasks)"
    assert names["local_capitals"] == "local_capitals"
    table = [line for line in card.text.splitlines() if line.startswith("| ")]
    labels = [line.split(" | ")[0].removeprefix("| ") for line in table[2:]]
    assert labels == [
        "local_arithmetic",
        "local_arithmetic",
        "local_prose_ppl",
        "local_prose_ppl",
        "local_prose_ppl",
        "local_trivia (group of 2 tasks)",
        "local_trivia (group of 2 tasks)",
        "↳ local_capitals",
        "↳ local_capitals",
        "↳ local_colours",
        "↳ local_colours",
    ]


def test_the_two_filters_are_named_apart(tmp_path):
    [path] = FILES
    _, _, results = published(tmp_path, path)
    arithmetic = {
        r.metric_name: r.metric_value for r in results if r.dataset_type == "local_arithmetic"
    }
    assert arithmetic == {
        "exact_match (strict-match)": 0.0,
        "exact_match (flexible-extract)": 0.6,
    }


def test_local_data_never_reaches_eval_results():
    [path] = FILES
    assert {r.dataset for r in load_results([path])} == {None}
    assert eval_results_files(load_results([path])) == {}
