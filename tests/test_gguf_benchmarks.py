"""eval.tasks.gguf: the release's lm-eval tasks on its GGUF files, run by llama.cpp in
process (``release.evaluate.llama_cpp_lm``) after the GGUF stage's checks.

Checked against lm-eval's own ``hf`` model: on SmolLM2 the f16 file gives each request
the log-probability, the choice and the greedy answer the hf model gives (so a
loglikelihood task cannot score at chance because of the backend, lm-evaluation-harness
#4158); a file broken on purpose (a few tensors zeroed) scores lower. Through
``model-release run`` the scores are GGUF facts, the card's table gets a column per type,
and the harness's files stay out of the GGUF repo's folder.
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import version
from pathlib import Path

import pytest

from cards.records import metric_label
from release.cli import main
from release.core.manifest import MANIFEST_NAME, Manifest
from release.evaluate.facts import EvaluateFacts
from release.gguf.facts import GGUFFacts
from release.report.compare import change
from tests.test_eval_tasks import SPEC, TASKS, _markdown_rows, _scores


def test_a_release_runs_its_tasks_on_the_gguf_files_named(
    tiny_llama_dir, tmp_path, capsys, monkeypatch
):
    """Through ``model-release run``: the f16 file's scores are recorded as GGUF facts,
    equal the merged model's within their stderr, are printed under the stage beside the
    merged model's, stand in an F16 column of both cards' tables, and leave no file
    beside the GGUF files; lm-eval is among the stage's tools; eval.tasks.gguf is the GGUF
    stage's setting (a change reruns it, not the evaluate stage). A file that drops past
    gguf.max_task_drop is refused in one line, and the run leaves everything as it was."""
    monkeypatch.setenv("COLUMNS", "120")  # rich shortens cells to fit 80 columns
    from tests.support.lora_models import make_adapter

    make_adapter(tiny_llama_dir, tmp_path / "adapter", target_modules=["q_proj", "v_proj"])
    spec = tmp_path / "release.yaml"
    text = SPEC.format(base=tiny_llama_dir, tasks=TASKS).replace("[q8_0]", "[f16]")
    spec.write_text(text + "    gguf: [f16]\n")
    stages = ["adapter", "merge", "evaluate", "gguf", "card"]
    assert main(["run", str(spec), *(f"--stage={stage}" for stage in stages)]) == 0
    printed = capsys.readouterr().out

    workspace = tmp_path / "build"
    manifest = Manifest.load(workspace / MANIFEST_NAME)
    merged = EvaluateFacts.of(manifest).results
    (run,) = GGUFFacts.of(manifest).benchmarks
    assert (run.type, run.file, run.max_task_drop) == ("f16", "tiny-F16.gguf", 0.2)
    assert {r.source for r in run.results} == {"tiny-F16.gguf"}
    ours, theirs = _scores(merged), _scores(run.results)
    assert theirs.keys() == ours.keys()
    for record in merged:
        if record.stderr is not None:  # accuracies: within the task's stderr
            assert abs(theirs[record.key] - record.value) <= record.stderr, record.key
        else:  # perplexities: the file is the model in f16
            assert theirs[record.key] == pytest.approx(record.value, rel=0.01), record.key
    drops = {(c.task, c.metric, c.filter): c for c in run.compared}
    assert drops.keys() == ours.keys()
    for record in merged:  # relative, positive is worse: a perplexity's rise too
        c = drops[record.key]
        assert (c.merged, c.value) == (record.value, theirs[record.key])
        worse = c.value - c.merged if record.higher_is_better is False else c.merged - c.value
        assert c.drop == pytest.approx(worse / c.merged if c.merged else 0, abs=1e-6), record.key
    assert sorted(p.name for p in (workspace / "gguf").iterdir()) == ["tiny-F16.gguf"]
    assert manifest.stages["gguf"].tools["lm_eval"] == version("lm_eval")

    # the CLI's table under the stage: the merged model's score, the file's beside it
    under_the_stage = [
        " ".join(line.split()) for line in printed.split("✔ gguf", 1)[1].splitlines()
    ]
    for key, c in drops.items():
        label = f"{c.task} {metric_label(c.metric, c.filter)}"
        assert f"{label} {c.merged:.4g} {c.value:.4g} ({change(c.drop)})" in under_the_stage, key

    header = "| Task | Metric | n-shot | Score | Stderr | F16 | Source |"
    for card_path in (workspace / "card" / "README.md", workspace / "card" / "gguf" / "README.md"):
        card = card_path.read_text()
        assert header in card, card
        rows = _markdown_rows(card, header)
        assert {(row[3], row[5]) for row in rows} == {
            (f"{value:.4f}", f"{theirs[key]:.4f}") for key, value in ours.items()
        }
        assert "F16: the same tasks on the GGUF file of that type, run by llama.cpp" in card

    from release.runner import stage_states
    from release.spec.schema import load_spec

    states = stage_states(load_spec(spec))
    assert (states["evaluate"], states["gguf"]) == ("done", "done")
    spec.write_text(text)  # no eval.tasks.gguf
    states = stage_states(load_spec(spec))
    assert (states["evaluate"], states["gguf"]) == ("done", "stale")

    # the merged model's recorded accuracy set far above the file's: the worst drop, which
    # a tighter limit refuses
    saved = json.loads((workspace / MANIFEST_NAME).read_text())
    for score in saved["stages"]["evaluate"]["facts"]["results"]:
        if (score["task"], score["metric"]) == ("mr_choice", "acc"):
            score["value"] = theirs["mr_choice", "acc", "none"] + 10
    (workspace / MANIFEST_NAME).write_text(json.dumps(saved, indent=2))
    before = (workspace / MANIFEST_NAME).read_bytes()
    files = {p.name: p.stat().st_mtime_ns for p in (workspace / "gguf").iterdir()}
    spec.write_text(
        text.replace("  types: [f16]", "  types: [f16]\n  max_task_drop: 0.1") + "    gguf: [f16]\n"
    )
    capsys.readouterr()
    assert main(["run", str(spec), "--stage=gguf"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    worse = f"{theirs['mr_choice', 'acc', 'none']:.4g}"
    assert (
        f"tiny-F16.gguf: mr_choice acc is {worse} on the file against the merged model's " in err
    ), err
    assert "over gguf.max_task_drop 0.1 (drop f16 from gguf.types and eval.tasks.gguf, " in err
    assert (workspace / MANIFEST_NAME).read_bytes() == before
    assert {p.name: p.stat().st_mtime_ns for p in (workspace / "gguf").iterdir()} == files
    assert not list(workspace.glob(".partial-*"))


def test_eval_tasks_gguf_names_an_exported_type(tiny_llama_dir, tmp_path, capsys):
    spec = tmp_path / "release.yaml"
    (tmp_path / "adapter").mkdir()
    text = SPEC.format(base=tiny_llama_dir, tasks=TASKS)
    spec.write_text(text + "    gguf: [q4_k_m]\n")
    assert main(["spec", "check", str(spec)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(
        "eval.tasks.gguf names q4_k_m, which gguf.types does not export; add it to "
        "gguf.types or leave it out of eval.tasks.gguf"
    ), err


@pytest.fixture(scope="module")
def smollm2_files(smollm2_base_dir, tmp_path_factory) -> dict[str, Path]:
    """SmolLM2 as an f16 GGUF file, and the same file with the feed-forward down
    projections of its first eight layers zeroed."""
    from release.gguf.formats import FORMATS
    from release.gguf.metadata import ReleaseMetadata
    from release.gguf.writer import export_gguf, open_source

    folder = tmp_path_factory.mktemp("gguf-benchmarks")
    files = {"f16": folder / "smollm2-F16.gguf", "broken": folder / "smollm2-broken.gguf"}
    for _ in export_gguf(
        open_source(smollm2_base_dir), files["f16"], FORMATS["f16"], ReleaseMetadata("s", "1")
    ):
        pass
    _zeroed(files["f16"], files["broken"], [f"blk.{i}.ffn_down.weight" for i in range(8)])
    return files


def _zeroed(source: Path, target: Path, names: list[str]) -> None:
    """``source`` with the data of the tensors ``names`` overwritten with zeros."""
    from gguf import GGUFReader

    tensors = {t.name: t for t in GGUFReader(source).tensors}
    shutil.copy(source, target)
    with target.open("r+b") as file:
        for name in names:
            file.seek(tensors[name].data_offset)
            file.write(bytes(tensors[name].n_bytes))


def _requests(kind: str, arguments: list[tuple]):
    from lm_eval.api.instance import Instance

    return [
        Instance(request_type=kind, doc={}, arguments=args, idx=i)
        for i, args in enumerate(arguments)
    ]


@pytest.mark.slow
def test_each_request_scores_as_lm_eval_s_hf_model_scores_it(smollm2_base_dir, smollm2_files):
    """The f16 file against lm-eval's hf model on SmolLM2, request by request, on the
    local tasks' own texts: each continuation's log-probability (within 1%), the choice
    it ranks first, the greedy answer, and a text's rolling log-probability."""
    from lm_eval.models.huggingface import HFLM

    from release.evaluate.llama_cpp_lm import LlamaCppLM

    facts = [json.loads(line) for line in (TASKS / "facts.jsonl").read_text().splitlines()]
    texts = [json.loads(line)["text"] for line in (TASKS / "text.jsonl").read_text().splitlines()]
    pairs = [
        (f"Question: {fact['question']}\nAnswer:", f" {choice}")
        for fact in facts
        for choice in fact["choices"]
    ]
    prompts = [
        (f"Question: {fact['question']} Answer with a number.\nAnswer:", {"until": ["\n"]})
        for fact in facts
    ]
    gen = {"max_gen_toks": 8, "do_sample": False}
    prompts = [(context, kwargs | gen) for context, kwargs in prompts]
    models = {
        "hf": HFLM(pretrained=str(smollm2_base_dir), dtype="float32", device="cpu"),
        "gguf": LlamaCppLM(str(smollm2_files["f16"])),
    }
    answers = {
        name: (
            model.loglikelihood(_requests("loglikelihood", pairs)),
            model.loglikelihood_rolling(_requests("loglikelihood_rolling", [(t,) for t in texts])),
            model.generate_until(_requests("generate_until", prompts)),
        )
        for name, model in models.items()
    }
    hf_pairs, hf_texts, hf_answers = answers["hf"]
    ours, our_texts, our_answers = answers["gguf"]
    for (theirs, _), (mine, _) in zip(hf_pairs, ours, strict=True):
        assert mine == pytest.approx(theirs, rel=0.01, abs=0.02)
    assert [greedy for _, greedy in ours] == [greedy for _, greedy in hf_pairs]
    chosen = [_first_choices(answered, facts) for answered in (hf_pairs, ours)]
    assert chosen[0] == chosen[1]
    assert sum(c == f["answer"] for c, f in zip(chosen[1], facts, strict=True)) > len(facts) / 3
    assert our_texts == pytest.approx(hf_texts, rel=0.01)
    assert our_answers == hf_answers


def _first_choices(answered: list[tuple[float, bool]], facts: list[dict]) -> list[int]:
    """The choice each question's log-probabilities rank first."""
    chosen, at = [], 0
    for fact in facts:
        scores = [logprob for logprob, _ in answered[at : at + len(fact["choices"])]]
        chosen.append(scores.index(max(scores)))
        at += len(fact["choices"])
    return chosen


@pytest.mark.slow
def test_a_file_broken_on_purpose_scores_lower(smollm2_files, capsys):
    """The tasks through lm-eval's command line on the f16 file and on the same file with
    eight tensors zeroed: the broken one's perplexity is far higher, its accuracy no
    better."""
    from release.core.relay import finish
    from release.evaluate.harness import run_gguf_tasks
    from release.spec.schema import TasksSpec
    from tests.support.reporters import SilentReporter

    tasks = TasksSpec(folder=TASKS, names=["mr_group", "mr_perplexity"])
    scores = {
        name: finish(run_gguf_tasks(tasks, path, SilentReporter("gguf")))
        for name, path in smollm2_files.items()
    }
    good, broken = _scores(scores["f16"]), _scores(scores["broken"])
    perplexity = ("mr_perplexity", "word_perplexity", "none")
    assert broken[perplexity] > 2 * good[perplexity]
    assert broken[("mr_choice", "acc", "none")] <= good[("mr_choice", "acc", "none")]
    print(
        {
            name: {" ".join(key): value for key, value in found.items()}
            for name, found in [("f16", good), ("broken", broken)]
        }
    )
