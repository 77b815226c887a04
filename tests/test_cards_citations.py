"""BibTeX checks and the method citation registry, checked against bibtexparser."""

from __future__ import annotations

import bibtexparser
import pytest

from cards.citations import METHODS, method_citations, methods_used, parse_bibtex
from cards.measured import MeasuredFacts

ALL_ON = MeasuredFacts.model_validate(
    {
        "lora": {
            "r": 8,
            "qlora": True,
            "use_rslora": True,
            "use_dora": True,
            "init_lora_weights": "pissa",
        },
        "gguf_files": [{"name": "m.gguf"}],
        "merge_recipe": {
            "yaml": "merge_method: linear\n",
            "inputs": [],
            "methods": [
                {"name": name, "pretty_name": name, "paper": "https://arxiv.org/"}
                for name in (
                    "linear",
                    "task_arithmetic",
                    "ties",
                    "dare_ties",
                    "dare_linear",
                    "slerp",
                    "breadcrumbs",
                    "breadcrumbs_ties",
                    "della",
                    "della_linear",
                )
            ],
        },
    }
)


def test_every_method_citation_is_valid_bibtex_with_its_key():
    texts = method_citations(ALL_ON, harnesses=["lm-evaluation-harness"])
    used = methods_used(ALL_ON, ["lm-evaluation-harness"])
    assert set(used) == set(METHODS)
    keys = list(dict.fromkeys(METHODS[name] for name in used))  # dare_* share one paper
    assert len(texts) == len(keys)
    for key, text in zip(keys, texts, strict=True):
        library = bibtexparser.parse_string(text)
        assert library.failed_blocks == []
        [entry] = library.entries
        assert entry.key == key
        assert parse_bibtex(text)[1] == []


@pytest.mark.parametrize(
    ("facts", "harnesses", "expected"),
    [
        ({}, [], []),
        ({"lora": {"r": 8, "use_rslora": False, "use_dora": False}}, [], ["lora"]),
        ({"lora": {"r": 8, "use_rslora": True}}, [], ["lora", "rslora"]),
        ({"lora": {"r": 8, "use_dora": True}}, [], ["lora", "dora"]),
        ({"lora": {"r": 8, "init_lora_weights": "pissa_niter_4"}}, [], ["lora", "pissa"]),
        ({"lora": {"r": 8, "init_lora_weights": True}}, [], ["lora"]),
        ({"gguf_files": []}, ["my-harness"], []),
        ({"gguf_files": [{"name": "x"}]}, ["lm-evaluation-harness"], ["gguf", "lm-eval"]),
    ],
)
def test_methods_come_from_facts(facts, harnesses, expected):
    assert methods_used(MeasuredFacts.model_validate(facts), harnesses) == expected


def test_base_model_and_dataset_citations_follow_the_methods():
    base = "@misc{base2024, title = {Base}, year = {2024}}"
    data = "@misc{data2024, title = {Data}, year = {2024}}"
    facts = {"lora": {"r": 4}, "base_model_citation": base, "dataset_citations": [data, " "]}
    texts = method_citations(MeasuredFacts.model_validate(facts))
    assert texts[1:] == [base, data]
    assert "hu2022lora" in texts[0]


def test_unclosed_entry_is_reported_on_its_first_line():
    text = "@misc{ok, title={Fine}, year=2020}\n\n@article{bad,\n  title = {Open,\n  year = 2020\n"
    entries, problems = parse_bibtex(text)
    assert [e.key for e in entries] == ["ok"]
    assert [(p.line, p.severity) for p in problems] == [(3, "error")]
    assert "unclosed" in problems[0].message


def test_duplicate_keys_and_fields():
    text = "@misc{a, title={One}}\n@misc{a, title={Two}}\n@misc{b, title={X}, title={Y}}\n"
    problems = parse_bibtex(text)[1]
    assert [(p.line, p.message) for p in problems] == [
        (2, "duplicate BibTeX key 'a'"),
        (3, "field given twice: title"),
    ]


def test_required_fields_per_entry_type():
    text = (
        "@article{x,\n  title = {T},\n  author = {A}\n}\n"
        "@inproceedings{y, title={T}, author={A}, booktitle={B}, date={2024-01-01}}\n"
        "@weird{z, title={T}}\n"
    )
    problems = parse_bibtex(text)[1]
    assert [(p.line, p.severity, p.message) for p in problems] == [
        (1, "error", "@article{x}: missing journal"),
        (1, "error", "@article{x}: missing year or date"),
        (6, "warning", "@weird{z}: unknown BibTeX entry type"),
    ]
