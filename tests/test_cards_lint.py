"""card check on small sample cards, one defect each (tests/cards_samples/cards/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cards.lint import lint_card, lint_file

CARDS = Path(__file__).parent / "cards_samples" / "cards"

# card -> the one problem it must produce: (line, severity, words in the message)
NO_LICENSE = (1, "warning", "no license: the Hub will show none")
EXPECTED = {
    "bad_license.md": (3, "error", "'apache2' is not a Hub license id"),
    "bad_language.md": (5, "error", "'es-ES' is not an ISO 639-1/639-3 language code"),
    "negative_accuracy.md": (13, "error", "accuracy = -0.13 is impossible"),
    "unclosed_bibtex.md": (7, "error", "unclosed or malformed entry '@article{broken2024,'"),
    "duplicate_result.md": (22, "error", "duplicate result: acc on Rowan/hellaswag"),
    "null_dataset.md": (4, "error", "datasets[0]: empty (null) entry"),
    "config_not_string.md": (11, "error", "dataset.config: must be a string, not int (25)"),
    "nan_metric.md": (13, "error", "value: nan is not a finite number"),
    "table_contradiction.md": (
        19,
        "error",
        "GSM8K exact_match = 48.12, but model-index says 0.4312",
    ),
    "other_base_model.md": (7, "error", "names base model 'meta-llama/Llama-3.1-8B'"),
    "yaml_error.md": (4, "error", "does not parse"),
    "license_other.md": (2, "error", "license: other needs license_name and license_link"),
    # a misspelt license is no license: the Hub shows none (issue 17)
    "typo_key.md": [NO_LICENSE, (2, "warning", "unknown key 'licence'; did you mean 'license'?")],
    "unclosed_front_matter.md": (1, "error", "never closed"),
    "duplicate_key.md": (4, "error", "key 'license' given twice (first on line 2)"),
    "leaderboard_table.md": (
        32,
        "error",
        "table gives AI2 Reasoning Challenge (25-Shot) = 61.24, but model-index says 60.24",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_defect_is_reported_once_on_its_line(name):
    problems = lint_file(CARDS / name)
    expected = EXPECTED[name] if isinstance(EXPECTED[name], list) else [EXPECTED[name]]
    assert [(p.line, p.severity) for p in problems] == [(n, s) for n, s, _ in expected], problems
    for problem, (line, severity, words) in zip(problems, expected, strict=True):
        assert words in problem.message
        assert problem.format().startswith(f"{CARDS / name}:{line}: {severity}: ")


def test_every_sample_card_has_an_expectation():
    on_disk = {p.name for p in CARDS.glob("*.md")} - {"good.md", "parameter_claims.md"}
    assert on_disk == set(EXPECTED)


def test_a_good_card_is_clean():
    assert lint_file(CARDS / "good.md") == []


def test_contradicting_parameter_counts_warn_on_each_later_claim():
    problems = lint_file(CARDS / "parameter_claims.md")
    assert [(p.line, p.severity) for p in problems] == [(8, "warning"), (10, "warning")]
    assert "'23.7B params' contradicts '4B parameters' on line 6" in problems[1].message


def test_all_problems_of_one_card_are_reported_together():
    # Field errors and whole-card rules together: pydantic skips after-validators
    # when fields fail, so the duplicate must still come from lint's own pass.
    text = (CARDS / "duplicate_result.md").read_text().replace("license: mit", "license: apache2")
    found = {(p.line, p.message.split(":")[0]) for p in lint_card(text)}
    assert (2, "license") in found
    assert (22, "duplicate result") in found


@pytest.mark.parametrize(
    ("shown", "ok"),
    [("58.96", True), ("0.5896", True), ("0.59", True), ("58.96%", True), ("59.1", False)],
)
def test_table_numbers_may_be_rounded_or_percent_but_not_different(shown, ok):
    text = (CARDS / "good.md").read_text().replace("| 58.96 |", f"| {shown} |")
    assert (lint_card(text) == []) is ok


def test_metric_filter_in_the_table_selects_the_matching_config():
    text = """---
license: mit
model-index:
- name: m
  results:
  - task: {type: text-generation}
    dataset: {name: gsm8k, type: openai/gsm8k}
    metrics:
    - {type: exact_match, config: strict-match, value: 0.0152}
    - {type: exact_match, config: flexible-extract, value: 0.0182}
---
| Task | Metric | Score |
| --- | --- | --- |
| gsm8k | exact_match (strict-match) | 0.0182 |
"""
    same_label, problem = lint_card(text)
    assert problem.line == 14 and "model-index says 0.0152" in problem.message
    # both filters have no name, so the Hub shows both as "exact_match" (issue 17)
    assert (same_label.line, same_label.severity) == (10, "warning")
    assert "the Hub shows this and results[0].metrics[0] both as 'exact_match'" in (
        same_label.message
    )


def test_numbers_in_code_blocks_and_unrelated_tables_are_ignored():
    text = (CARDS / "good.md").read_text() + (
        "\n| Hyperparameter | Value |\n| --- | --- |\n| ARC-Easy | 3 |\n"
        "\n```\n| ARC-Easy | 12.5 |\n```\n"
    )
    assert lint_card(text) == []


def test_card_without_front_matter_gets_one_warning():
    [problem] = lint_card("# Just a title\n")
    assert (problem.line, problem.severity) == (1, "warning")


def test_unreadable_file_is_a_card_error(tmp_path):
    from cards.errors import CardError

    with pytest.raises(CardError, match="cannot read card"):
        lint_file(tmp_path / "missing.md")


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("datasets: ['']", [NO_LICENSE, (2, "error", "datasets[0]: empty string")]),
        ("1: x", [NO_LICENSE, (2, "error", "Keys should be strings")]),
        ("- a\n- b", [(2, "error", "must be a mapping")]),
        (
            "model-index: 5",
            [NO_LICENSE, (2, "error", "model-index: Input should be a valid list")],
        ),
        ("x: !!python/object:os.system {}", [(2, "error", "does not parse")]),
    ],
)
def test_malformed_metadata_is_reported_not_crashed_on(yaml_text, expected):
    problems = lint_card(f"---\n{yaml_text}\n---\n# body\n")
    got = [(p.line, p.severity, p.message) for p in problems]
    assert [(line, sev) for line, sev, _ in got] == [(line, sev) for line, sev, _ in expected]
    for (_, _, message), (_, _, words) in zip(got, expected, strict=True):
        assert words in message


def test_non_mapping_metrics_are_not_called_duplicates():
    text = "---\nlicense: mit\nmodel-index:\n- name: m\n  results:\n  - task: {type: t}\n"
    text += "    dataset: {type: d, name: D}\n    metrics: [1, 2]\n---\n"
    messages = [p.message for p in lint_card(text)]
    assert len(messages) == 2 and not any("duplicate" in m for m in messages)


def test_base_model_named_only_in_the_body_is_a_warning():
    [problem] = lint_card("---\nlicense: mit\n---\nFine-tuned from `meta-llama/Llama-3.1-8B`.\n")
    assert (problem.line, problem.severity) == (4, "warning")
    assert "add base_model: meta-llama/Llama-3.1-8B" in problem.message
