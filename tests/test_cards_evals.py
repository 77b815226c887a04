"""Stored eval results: lm-eval JSON, the simple formats, merging, model-index."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from huggingface_hub import parse_eval_result_entries
from huggingface_hub.repocard_data import model_index_to_eval_results

from cards.errors import CardError
from cards.evals import (
    dataset_label,
    eval_results_files,
    load_results,
    to_eval_results,
    to_model_index,
)

SAMPLES = Path(__file__).parent / "cards_samples"
FIRST = SAMPLES / "results_2026-03-01T10-00-00.123456.json"
RERUN = SAMPLES / "results_2026-03-03T10-00-00.500000.json"


def by_key(records):
    return {(r.task, r.metric, r.filter): r for r in records}


def test_lm_eval_scores_are_read_as_written():
    raw = json.loads(FIRST.read_text())
    records = by_key(load_results([FIRST]))
    expected = {
        (task, key.split(",")[0], key.split(",")[1]): value
        for task, scores in raw["results"].items()
        for key, value in scores.items()
        if "," in key and "_stderr" not in key
    }
    assert {k: r.value for k, r in records.items()} == expected
    gsm = records[("gsm8k", "exact_match", "strict-match")]
    assert gsm.stderr == raw["results"]["gsm8k"]["exact_match_stderr,strict-match"]
    assert (gsm.n_shot, gsm.task_version, gsm.harness_version) == (5, "3.0", "0.4.8")
    assert gsm.model_revision == raw["config"]["model_sha"]
    assert (gsm.dataset, gsm.dataset_config, gsm.split) == ("openai/gsm8k", "main", "test")
    assert gsm.date == datetime.fromtimestamp(raw["date"], UTC)
    assert gsm.source == str(FIRST) and gsm.higher_is_better is True


def test_na_stderr_becomes_none():
    assert by_key(load_results([FIRST]))[("mmlu", "acc", "none")].stderr is None


def test_newest_file_wins_per_task_and_metric_whatever_the_order():
    for order in ([FIRST, RERUN], [RERUN, FIRST]):
        records = by_key(load_results(order))
        assert records[("arc_easy", "acc", "none")].value == 0.5896464646464646
        assert records[("arc_easy", "acc", "none")].source == str(RERUN)
        assert records[("hellaswag", "acc", "none")].source == str(FIRST)


def test_simple_yaml_and_csv_results():
    records = by_key(
        load_results([SAMPLES / "simple_results.yaml", SAMPLES / "simple_results.csv"])
    )
    toxigen = records[("toxigen", "acc", "none")]
    assert (toxigen.value, toxigen.stderr, toxigen.harness, toxigen.harness_version) == (
        0.4319,
        0.0162,
        "my-harness",
        "1.4.0",
    )
    winogrande = records[("winogrande", "acc", "none")]
    assert (winogrande.value, winogrande.n_shot, winogrande.dataset_config) == (
        0.5272,
        5,
        "winogrande_xl",
    )
    assert records[("piqa", "acc_norm", "none")].stderr is None


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("bad.json", '{"results": {"arc": {"acc,none": NaN}}}', "finite number"),
        ("bad.json", '{"results": [}', "bad.json:1: invalid JSON"),
        ("bad.json", '{"versions": {}}', "no 'results' object"),
        (
            "r.yaml",
            "harness: h\nresults:\n- {task: t, metric: m, value: 1, n-shot: 0}\n",
            "results[0]",
        ),
        ("r.yaml", "harnes: h\nresults: []\n", "unknown top-level field 'harnes'"),
        ("r.csv", "task,metric,value\nt,m,high\n", "line 2"),
        ("r.txt", "", "unknown results format"),
    ],
)
def test_bad_results_files_fail_with_one_located_line(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CardError) as info:
        load_results([path])
    assert words in str(info.value) and "\n" not in str(info.value)


def test_model_index_round_trips_through_huggingface_hub():
    records = load_results([FIRST, RERUN])
    name, results = model_index_to_eval_results(to_model_index(records, "demo"))
    assert name == "demo"
    got = {(r.dataset_name, r.metric_type, r.metric_config): r.metric_value for r in results}
    want = {
        (dataset_label(r), r.metric, None if r.filter == "none" else r.filter): r.value
        for r in records
    }
    assert got == want
    assert "mmlu (group of 2 tasks)" in {r.dataset_name for r in results}
    shots = {r.dataset_name: r.dataset_args["num_few_shot"] for r in results}
    assert shots["gsm8k"] == 5 and shots["arc_easy"] == 0


def test_model_index_source_names_the_results_file():
    [result] = to_eval_results(load_results([RERUN])[:1], source_url="https://example.org/r")
    assert (result.source_url, result.source_name) == ("https://example.org/r", RERUN.name)


def test_tasks_sharing_a_dataset_stay_apart_in_model_index(tmp_path):
    path = tmp_path / "r.yaml"
    rows = [
        {"task": t, "metric": "acc", "value": v, "dataset": "allenai/ai2_arc", "split": "test"}
        for t, v in (("arc_easy", 0.5), ("arc_easy_cot", 0.6))
    ]
    path.write_text(yaml.safe_dump({"harness": "h", "results": rows}))
    _, results = model_index_to_eval_results(to_model_index(load_results([path]), "m"))
    assert sorted((r.dataset_type, r.metric_value) for r in results) == [
        ("arc_easy", 0.5),
        ("arc_easy_cot", 0.6),
    ]


def test_eval_results_files_parse_with_huggingface_hub():
    records = load_results([FIRST])
    files = eval_results_files(records)
    assert ".eval_results/gsm8k-exact_match-strict-match.yaml" in files
    [entry] = parse_eval_result_entries(yaml.safe_load(files[".eval_results/arc_easy-acc.yaml"]))
    assert (entry.dataset_id, entry.task_id, entry.value) == (
        "allenai/ai2_arc",
        "arc_easy",
        0.5829124579124579,
    )
    assert entry.notes == "lm-evaluation-harness 0.4.8, 0-shot, acc"
    # mmlu (a group) has no dataset of its own, so it has no leaderboard entry
    assert not any("mmlu-acc" in name for name in files)


def test_only_hub_dataset_ids_are_kept_and_reach_eval_results(tmp_path):
    path = tmp_path / "r.yaml"
    datasets = {"a": "json", "b": "./data/local", "c": "xnli", "d": "allenai/ai2_arc", "e": "csv"}
    rows = [{"task": t, "metric": "acc", "value": 0.5, "dataset": d} for t, d in datasets.items()]
    path.write_text(yaml.safe_dump({"harness": "h", "results": rows}))
    records = load_results([path])
    assert {r.task: r.dataset for r in records} == {
        "a": None,
        "b": None,
        "c": "xnli",
        "d": "allenai/ai2_arc",
        "e": None,
    }
    assert sorted(eval_results_files(records)) == [
        ".eval_results/c-acc.yaml",
        ".eval_results/d-acc.yaml",
    ]


def test_tasks_on_one_hub_dataset_with_other_metrics_stay_apart(tmp_path):
    """The Hub groups by dataset identity whatever the metric: a perplexity and an f1 of
    two tasks on one dataset must not share a row (nor its name)."""
    path = tmp_path / "r.yaml"
    rows = [
        {"task": "squad_f1", "metric": "f1", "value": 0.71, "dataset": "rajpurkar/squad"},
        {"task": "squad_ppl", "metric": "perplexity", "value": 12.5, "dataset": "rajpurkar/squad"},
    ]
    path.write_text(yaml.safe_dump({"harness": "h", "results": rows}))
    _, results = model_index_to_eval_results(to_model_index(load_results([path]), "m"))
    assert sorted(
        (r.dataset_type, r.dataset_name, r.metric_type, r.metric_value) for r in results
    ) == [
        ("squad_f1", "squad_f1", "f1", 0.71),
        ("squad_ppl", "squad_ppl", "perplexity", 12.5),
    ]
