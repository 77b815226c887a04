"""The regression gate on stored lm-eval results: a catastrophe fails, a dip warns,
differently measured scores are flagged instead of compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cards.evals import load_results
from release.core.errors import StageError
from release.core.events import StageFinished
from release.core.manifest import Manifest, StageRecord
from release.evaluate.gate import compare, previous_records
from release.runner import run_release
from release.spec.schema import ReleaseSpec
from release.stages.evaluate import EvaluateStage


def lm_eval_file(path: Path, scores: dict[str, float], n_shot: int = 0) -> Path:
    """A results file shaped as lm-evaluation-harness 0.4 writes it."""
    data = {
        "results": {
            task: {"alias": task, "acc,none": value, "acc_stderr,none": 0.01}
            for task, value in scores.items()
        },
        "versions": {task: 1.0 for task in scores},
        "n-shot": {task: n_shot for task in scores},
        "higher_is_better": {task: {"acc": True} for task in scores},
        "config": {"model": "hf", "model_args": "pretrained=me/model"},
        "lm_eval_version": "0.4.9",
        "date": 1760000000.0,
    }
    path.write_text(json.dumps(data))
    return path


LAST = {"arc_easy": 0.62, "hellaswag": 0.41, "piqa": 0.68, "winogrande": 0.56, "boolq": 0.55}


def gate(tmp_path, now: dict[str, float], *, n_shot_now: int = 0):
    before = load_results([lm_eval_file(tmp_path / "v1.json", LAST)])
    after = load_results([lm_eval_file(tmp_path / "v2.json", now, n_shot_now)])
    return compare(after, before, max_task_drop=0.2, max_average_drop=0.05)


def test_catastrophic_drop_fails_naming_tasks_and_scores(tmp_path):
    verdict = gate(tmp_path, {task: 0.02 + 0.01 * i for i, task in enumerate(LAST)})
    assert not verdict.passed
    assert verdict.failures[0].startswith("average 0.564 → 0.04 (-93%)")
    assert "arc_easy acc 0.62 → 0.02 (-97%)" in verdict.failures
    assert len(verdict.failures) == 1 + len(LAST)


def test_small_drop_passes_with_a_warning(tmp_path):
    verdict = gate(tmp_path, LAST | {"hellaswag": 0.39})
    assert verdict.passed
    assert verdict.warnings == ["hellaswag acc 0.41 → 0.39 (-5%)"]
    assert verdict.failures == []


def test_one_task_collapsing_fails_even_when_the_average_holds(tmp_path):
    verdict = gate(tmp_path, LAST | {"piqa": 0.50, "boolq": 0.70})
    assert not verdict.passed
    assert verdict.failures == ["piqa acc 0.68 → 0.5 (-26%)"]


def test_mixed_n_shot_is_flagged_not_compared(tmp_path):
    verdict = gate(tmp_path, {task: 0.01 for task in LAST}, n_shot_now=5)
    assert verdict.passed  # nothing comparable: no verdict on apples vs oranges
    assert verdict.compared == []
    assert "arc_easy acc: n-shot differs (0 before, 5 now); not compared" in verdict.flagged


def test_previous_scores_come_from_the_last_manifest(tmp_path):
    records = load_results([lm_eval_file(tmp_path / "v1.json", LAST)])
    manifest = Manifest(name="m", version="1.0.0")
    facts = {"results": [json.loads(r.model_dump_json()) for r in records]}
    manifest.stages["evaluate"] = StageRecord(
        key="k", finished_at="2026-01-01T00:00:00+00:00", seconds=1, facts=facts
    )
    manifest.save(tmp_path / "manifest.json")
    assert previous_records([tmp_path / "manifest.json"]) == records


def test_the_evaluate_stage_stops_a_catastrophic_release_before_any_model_loads(tmp_path):
    """The gate runs first: a release whose scores collapsed fails without a model."""
    spec = ReleaseSpec.model_validate(
        {
            "name": "m",
            "version": "2.0.0",
            "base": {"repo_id": "a/b"},
            "adapter": {"path": str(tmp_path)},
            "workspace": str(tmp_path / "ws"),
            "eval": {
                "results": [str(lm_eval_file(tmp_path / "v2.json", dict.fromkeys(LAST, 0.02)))],
                "previous": [str(lm_eval_file(tmp_path / "v1.json", LAST))],
            },
        }
    )
    manifest = Manifest(name="m", version="2.0.0")
    for name in ("adapter", "merge"):
        manifest.stages[name] = StageRecord(key=name, finished_at="t", seconds=0)
    manifest.save(tmp_path / "ws" / "manifest.json")
    with pytest.raises(StageError) as info:
        for event in run_release(spec, stages=[EvaluateStage()]):
            assert not isinstance(event, StageFinished)
    message = str(info.value)
    assert message.startswith("evaluate: regression gate failed against the last release:")
    assert "average 0.564 → 0.02 (-96%)" in message
    assert "arc_easy acc 0.62 → 0.02 (-97%)" in message


def filtered_file(path: Path, strict: float, flexible: float) -> Path:
    """gsm8k as lm-eval writes it: one exact_match per filter."""
    scores = {"exact_match,strict-match": strict, "exact_match,flexible-extract": flexible}
    data = {
        "results": {"gsm8k": {"alias": "gsm8k", **scores}},
        "n-shot": {"gsm8k": 5},
        "versions": {"gsm8k": 3.0},
        "lm_eval_version": "0.4.13",
    }
    path.write_text(json.dumps(data))
    return path


def test_the_gate_names_the_filter_of_each_score(tmp_path):
    before = load_results([filtered_file(tmp_path / "v1.json", 0.3, 0.35)])
    after = load_results([filtered_file(tmp_path / "v2.json", 0.0, 0.0)])
    verdict = compare(after, before, max_task_drop=0.2, max_average_drop=0.5)
    assert sorted(verdict.failures[1:]) == [
        "gsm8k exact_match (flexible-extract) 0.35 → 0 (-100%)",
        "gsm8k exact_match (strict-match) 0.3 → 0 (-100%)",
    ]
    shifted = load_results([filtered_file(tmp_path / "v3.json", 0.3, 0.35)])
    flagged = compare(
        [r.model_copy(update={"n_shot": 0}) for r in shifted],
        before,
        max_task_drop=0.2,
        max_average_drop=0.5,
    ).flagged
    assert "gsm8k exact_match (strict-match): n-shot differs (5 before, 0 now); not compared" in (
        flagged
    )


@pytest.mark.parametrize(("drop", "shown"), [(0.0, "+0.0%"), (0.125, "-12.5%"), (-0.02, "+2.0%")])
def test_a_change_is_signed_so_that_plus_is_better(drop, shown):
    from release.report.compare import change

    assert change(drop) == shown


def test_a_gguf_file_is_judged_against_the_merged_model_by_the_same_rule(tmp_path):
    """eval.tasks.gguf: each of a file's scores against the merged model's; the worst
    drop over gguf.max_task_drop refuses the file in one line naming it, the task, the
    figures and the limit, and how to drop the type or change the limit."""
    from release.core.errors import WorkError
    from release.evaluate.gate import judge_quant

    merged = load_results([lm_eval_file(tmp_path / "merged.json", LAST)])
    on_file = load_results(
        [lm_eval_file(tmp_path / "q4.json", LAST | {"piqa": 0.612, "boolq": 0.44})]
    )
    compared = judge_quant("m-Q4_K_M.gguf", "q4_k_m", merged, on_file, 0.25)
    drops = {c.task: round(c.drop, 4) for c in compared}
    assert drops == {task: 0.0 for task in LAST} | {"piqa": 0.1, "boolq": 0.2}
    with pytest.raises(WorkError) as refused:
        judge_quant("m-Q4_K_M.gguf", "q4_k_m", merged, on_file, 0.15)
    assert refused.value.message == (
        "m-Q4_K_M.gguf: boolq acc is 0.44 on the file against the merged model's 0.55 "
        "(-20%), over gguf.max_task_drop 0.15"
    )
    assert refused.value.hint == (
        "drop q4_k_m from gguf.types and eval.tasks.gguf, or raise gguf.max_task_drop in the spec"
    )
