"""eval.contamination: training data against the documents of the tasks the release
reports, on planted contamination (exact copies, a changed word, a test text inside a
training text, none) in a Catalan-shaped training set; the word 13-grams against
lm-eval's own Janitor; the stage's key and gate through the runner."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console

from release.core.errors import InputError, Refused, SpecError
from release.core.events import StageSkipped, StageStarted
from release.core.manifest import MANIFEST_NAME, Manifest
from release.evaluate.contamination.check import TaskDocument, check_contamination
from release.evaluate.contamination.facts import ContaminationFacts
from release.evaluate.contamination.methods import methods_of
from release.evaluate.contamination.normalize import normal_form
from release.evaluate.contamination.training import Segment, read_segments
from release.report.github import JobReport
from release.runner import run_release
from release.spec.schema import ContaminationSpec, TrainingDataSpec, load_spec
from release.stages.contamination import ContaminationStage
from release.tui.panes.evaluate import _contamination_table
from tests.support.catalan_text import planted_corpus, sentences

TASKS = Path(__file__).parent / "eval_tasks"
PERPLEXITY = [json.loads(line)["text"] for line in (TASKS / "text.jsonl").open()]


class Quiet:
    stage = "contamination"

    def log(self, message, level="info"):
        return None

    def progress(self, done, total, unit, message=""):
        return None

    def check_cancelled(self):
        return None


def check(spec: ContaminationSpec, documents, segments, spill: Path):
    run = check_contamination(spec, methods_of(spec), documents, segments, spill, Quiet())
    try:
        while True:
            next(run)
    except StopIteration as done:
        return done.value


def test_normal_form_folds_unicode_case_punctuation_and_space():
    assert normal_form("  L’Àvia,\u00a0va dir:\n«Hola!»  ﬁ ") == "làvia va dir hola fi"
    assert normal_form("ＡＢＣ — 1\u2009000 €") == "abc 1 000"


# --- the Janitor ------------------------------------------------------------------------

JANITOR_TRICKS = [
    # ASCII upper case is lowered, non-ASCII is not; a word of punctuation alone stays an
    # empty word on the training side and vanishes on the test side
    "L'ÀVIA va dir , que el Pirineu és molt alt i la neu cau — cada hivern sobre el poble",
    "Tabs\tand\nnewlines   and  double  spaces between the thirteen words of this one line",
]


def _janitor_found(janitor_module, tests: list[str], training: list[str]) -> list[set[str]]:
    """Each test text's 13-grams the Janitor would find in ``training``: registered with
    ``register_contaminant_python``, matched as ``clean_python`` matches."""
    cleaner = janitor_module.Janitor()
    held = {  # what clean_python tests against dirt_ngrams, of every training text
        cleaner.normalize_string(ngram)
        for train in training
        for ngram, _ in janitor_module.word_ngrams_indices(train, cleaner.ngram_n)
    }
    found = []
    for text in tests:
        janitor = janitor_module.Janitor()
        janitor.register_contaminant_python(text)
        found.append(janitor.dirt_ngrams & held)
    return found


def test_word_ngrams_count_as_lm_eval_janitor(tmp_path):
    from lm_eval.decontamination import janitor as janitor_module

    training = [f"{a} {b}" for a, b in zip(sentences(400, 11), sentences(400, 12), strict=True)]
    tests = sentences(120, 13, words=(10, 40)) + JANITOR_TRICKS
    for k in range(0, 60, 3):
        training[k] = f"{training[k]} {tests[k]}"  # whole test text inside
        words = tests[k + 1].split()
        training[k + 1] = " ".join(words[: len(words) // 2 + 6])  # the first half and more
    training.append("l'ÀVIA va dir , que el Pirineu és molt alt i la neu cau cada hivern")
    training.append("Tabs and newlines and double spaces between the thirteen words of this one")
    spec = ContaminationSpec(training_data=[{"path": tmp_path}], methods=["word_ngrams"])
    documents = [TaskDocument("t", i, text) for i, text in enumerate(tests)]
    segments = [Segment(f"train:{i}", (text,)) for i, text in enumerate(training)]
    result = check(spec, documents, segments, tmp_path / "spill")

    matches = result.matches["word_13grams"]
    docs, starts, ends = matches.windows
    ours = [set() for _ in tests]
    for doc, start, end in zip(docs.tolist(), starts.tolist(), ends.tolist(), strict=True):
        ours[doc].add(matches.forms[doc][start:end])
    theirs = _janitor_found(janitor_module, tests, training)
    assert ours == theirs
    assert int(matches.flagged.sum()) == sum(bool(found) for found in theirs) >= 30
    assert not theirs[-2] and theirs[-1]  # a training word "," stays, empty: no 13 in a row


# --- engine: planted contamination in Catalan-shaped data -------------------------------


@pytest.fixture(scope="module")
def catalan(tmp_path_factory) -> tuple[list[str], list[Segment]]:
    """Test texts and a training set: test 0 copied exactly, 1 with one word changed, 2
    inside a longer training text, the rest nowhere."""
    tests, training = planted_corpus(30, 3000, 1, 21, question_words=(16, 24), answer_words=(4, 8))
    segments = [Segment(f"train.jsonl:{i + 1}", (text,)) for i, text in enumerate(training)]
    return tests, segments


def test_planted_contamination_is_found_by_each_method(catalan, tmp_path):
    tests, segments = catalan
    spec = ContaminationSpec(training_data=[{"path": tmp_path}])
    documents = [TaskDocument("cat", i, text) for i, text in enumerate(tests)]
    result = check(spec, documents, segments, tmp_path / "spill")
    flagged = {key: np.flatnonzero(m.flagged).tolist() for key, m in result.matches.items()}
    assert flagged == {
        "exact": [0],
        "substring": [0, 2],
        "word_13grams": [0, 1, 2],  # 13 words in a row on one side of the changed one
        "char_50grams": [0, 1, 2],
        "char_30grams": [0, 1, 2],
    }
    assert result.matches["exact"].training == {0: "train.jsonl:11"}
    assert result.matches["substring"].training == {0: "train.jsonl:11", 2: "train.jsonl:31"}
    overlap = result.matches["char_50grams"].overlap
    assert 0.3 < overlap[1] < 1 and overlap[0] == overlap[2] == 1
    assert overlap[3:].max() < 0.05
    assert result.matches["char_30grams"].longest_span(2) == normal_form(tests[2])


def test_index_past_its_cap_lies_on_disk_and_finds_the_same(catalan, tmp_path):
    tests, segments = catalan
    documents = [TaskDocument("cat", i, text) for i, text in enumerate(tests)]
    roomy = ContaminationSpec(training_data=[{"path": tmp_path}], methods=["char_ngrams"])
    tight = roomy.model_copy(update={"memory_cap": 1024})
    in_memory = check(roomy, documents, segments, tmp_path / "a")
    on_disk = check(tight, documents, segments, tmp_path / "b")
    assert in_memory.index_spilled == 0 and on_disk.index_spilled > 0
    for key, matches in in_memory.matches.items():
        assert np.array_equal(matches.overlap, on_disk.matches[key].overlap)


# --- training data readers ----------------------------------------------------------------


def test_training_layouts_and_formats(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "data"
    folder.mkdir()
    chat = {
        "messages": [
            {"role": "user", "content": "Hola"},
            {"role": "assistant", "content": "Bon dia"},
        ]
    }
    (folder / "a.jsonl").write_text(
        json.dumps(chat) + "\n\n" + json.dumps({"text": "Un text"}) + "\n"
    )
    (folder / "b.json").write_text(
        json.dumps([{"instruction": "Tradueix", "input": "cat", "output": "gat"}])
    )
    pq.write_table(
        pa.table({"prompt": ["Quina hora és?"], "completion": ["Les tres."]}), folder / "c.parquet"
    )
    (folder / "d.txt").write_text("Primera línia\n\nSegona línia\n")
    (folder / "ignored.csv").write_text("x,y\n")
    segments = list(read_segments([TrainingDataSpec(path=folder)]))
    assert [(s.source, s.parts) for s in segments] == [
        ("a.jsonl:1", ("Hola", "Bon dia")),
        ("a.jsonl:3", ("Un text",)),
        ("b.json:1", ("Tradueix", "cat", "gat")),
        ("c.parquet:1", ("Quina hora és?", "Les tres.")),
        ("d.txt:1", ("Primera línia",)),
        ("d.txt:3", ("Segona línia",)),
    ]
    named = TrainingDataSpec(path=folder / "b.json", fields=["output"])
    assert [s.parts for s in read_segments([named])] == [("gat",)]


def test_a_hub_dataset_not_in_the_cache_is_not_downloaded(tmp_path):
    source = TrainingDataSpec(hub="nobody/no-such-dataset")
    with pytest.raises(InputError, match=r"nobody/no-such-dataset: not in the local datasets"):
        list(read_segments([source]))


def test_unknown_layout_is_one_line_naming_the_record(tmp_path):
    (tmp_path / "x.jsonl").write_text(json.dumps({"body": "text"}) + "\n")
    with pytest.raises(InputError, match=r"x.jsonl:1: none of the fields body is a known layout"):
        list(read_segments([TrainingDataSpec(path=tmp_path / "x.jsonl")]))
    missing = TrainingDataSpec(path=tmp_path / "x.jsonl", fields=["text"])
    with pytest.raises(InputError, match=r"x.jsonl:1: the record has no field 'text'"):
        list(read_segments([missing]))


# --- spec, stage key and gate through the runner --------------------------------------------

SPEC = """\
name: tiny
version: 0.1.0
base:
  path: base
adapter:
  path: adapter
eval:
  tasks:
    folder: tasks
  contamination:
    training_data:
      - train.jsonl
"""


def _training(folder: Path, extra: list[str]) -> None:
    rows = [{"messages": [{"role": "user", "content": t}]} for t in sentences(400, 31)]
    rows += [
        {"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": "D'acord."}]}
        for t in extra
    ]
    (folder / "train.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n"
    )


@pytest.fixture
def release_dir(tmp_path) -> Path:
    shutil.copytree(TASKS, tmp_path / "tasks")
    changed = PERPLEXITY[1].replace("blossom", "flowers")
    _training(
        tmp_path, [PERPLEXITY[0], changed, "Abans: Question: What do bees make?\nAnswer: honey. Fi"]
    )
    (tmp_path / "release.yaml").write_text(SPEC)
    return tmp_path


def _run(folder: Path, **contamination) -> tuple[list, ContaminationFacts | None]:
    if contamination:
        data = yaml.safe_load((folder / "release.yaml").read_text())
        data["eval"]["contamination"] |= contamination
        (folder / "release.yaml").write_text(yaml.safe_dump(data))
    spec = load_spec(folder / "release.yaml")
    events = list(run_release(spec, stages=[ContaminationStage()]))
    manifest = Manifest.load(spec.workspace / MANIFEST_NAME)
    return events, ContaminationFacts.of(manifest)


def test_stage_records_each_task_and_reruns_only_when_its_inputs_change(release_dir):
    events, facts = _run(release_dir)
    assert [e.stage for e in events if isinstance(e, StageStarted)] == ["contamination"]
    by_task = {task.task: task for task in facts.tasks}
    assert list(by_task) == ["mr_choice", "mr_generate", "mr_perplexity"]
    assert by_task["mr_perplexity"].contaminated == {
        "exact": 1,
        "substring": 1,
        "word_13grams": 1,
        "char_50grams": 1,
        "char_30grams": 2,
    }  # no 50 characters in a row of the changed text (82 characters) miss the change
    assert by_task["mr_perplexity"].any_method == 2
    assert by_task["mr_perplexity"].share == pytest.approx(2 / 3)
    first, second = by_task["mr_perplexity"].examples
    assert (first.doc_id, first.method, first.training) == (0, "exact", "train.jsonl:401")
    assert (second.doc_id, second.method) == (1, "char_30grams")
    assert "the branches bend with apples" in second.span
    choice = by_task["mr_choice"]
    assert choice.contaminated["substring"] == 1 and choice.examples[0].doc_id == 3
    assert by_task["mr_generate"].any_method == 0
    assert facts.training == ["train.jsonl"] and facts.segments == 403 and facts.passed
    summary = JobReport(load_spec(release_dir / "release.yaml")).markdown([])
    assert "### Contamination check" in summary
    assert "403 training texts against 15 test documents (Exact, Substring," in summary
    assert "| mr_perplexity | 3 | 2 | 66.7% |" in summary
    console = Console(width=100, record=True)
    console.print(_contamination_table(facts))  # the wizard's eval step
    wizard = console.export_text()
    assert "Contamination check: 403 training texts" in wizard
    assert "mr_perplexity │         3 │     2 │ 66.7%" in wizard

    assert isinstance(_run(release_dir)[0][0], StageSkipped)
    assert isinstance(_run(release_dir, memory_cap="10MB")[0][0], StageSkipped)
    events, facts = _run(release_dir, methods=["exact"])
    assert isinstance(events[0], StageStarted)
    assert [m.key for m in facts.methods] == ["exact"]
    _training(release_dir, [])
    events, facts = _run(release_dir)
    assert isinstance(events[0], StageStarted) and facts.documents == 15
    assert sum(task.any_method for task in facts.tasks) == 0


def test_gate_refuses_or_marks_a_task_above_max_share(release_dir):
    with pytest.raises(
        Refused, match=r"^contamination: mr_perplexity: 2 of 3 documents \(66.7%\).*max_share 20.0%"
    ):
        _run(release_dir, max_share=0.2)
    spec = load_spec(release_dir / "release.yaml")
    manifest = Manifest.load(spec.workspace / MANIFEST_NAME)
    assert manifest.refused["contamination"].facts["passed"] is False
    _, facts = _run(release_dir, max_share=0.2, on_exceed="mark")
    assert facts.passed and facts.contaminated_tasks == ["mr_perplexity"]


def test_spec_errors_are_located(tmp_path):
    text = SPEC + "    method: [exact]\n"
    (tmp_path / "release.yaml").write_text(text)
    with pytest.raises(SpecError) as error:
        load_spec(tmp_path / "release.yaml")
    problems = "\n".join(error.value.problems)
    assert "release.yaml:13: eval.contamination.method: unknown key" in problems
    assert "eval.contamination.training_data.0: Value error" not in problems
    assert "no such file or folder" in problems
    no_tasks = textwrap.dedent(SPEC).replace("  tasks:\n    folder: tasks\n", "")
    (tmp_path / "release.yaml").write_text(no_tasks)
    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(SpecError) as error:
        load_spec(tmp_path / "release.yaml")
    assert "contamination checks the documents of eval.tasks" in "\n".join(error.value.problems)


# --- the card's section -------------------------------------------------------------------

SNAPSHOTS = Path(__file__).parent / "cards_samples" / "contamination"


def _section(text: str) -> str:
    start = text.index("## Contamination check")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None].strip() + "\n"


@pytest.mark.parametrize("planted", [True, False], ids=["found", "nothing-found"])
def test_card_section_says_what_was_compared_how_and_what_was_found(release_dir, planted):
    from cards.lint import lint_card
    from cards.render import render_model_card
    from cards.spec import load_context
    from release.report.card_context import card_facts
    from tests.test_cards_render import BASELINE, DEMO, RESULTS

    if not planted:
        _training(release_dir, [])
    _run(release_dir, max_share=0.2, on_exceed="mark")
    manifest = Manifest.load(load_spec(release_dir / "release.yaml").workspace / MANIFEST_NAME)
    demo = load_context(DEMO / "card.yaml", RESULTS, BASELINE, DEMO / "facts.json")
    checked = card_facts(manifest).contamination
    facts = demo.facts.model_copy(update={"contamination": checked})
    text = render_model_card(demo.model_copy(update={"facts": facts}))
    assert lint_card(text) == []
    snapshot = SNAPSHOTS / f"{'found' if planted else 'nothing-found'}.md"
    assert _section(text) == snapshot.read_text(encoding="utf-8")
    assert "## Contamination check" not in render_model_card(demo)


def test_worker_processes_find_what_one_process_finds(catalan, tmp_path, monkeypatch):
    from release.evaluate.contamination import check as check_module

    tests, segments = catalan
    spec = ContaminationSpec(training_data=[{"path": tmp_path}])
    documents = [TaskDocument("cat", i, text) for i, text in enumerate(tests)]
    monkeypatch.setattr(check_module, "BATCH_SEGMENTS", 700)  # five batches
    monkeypatch.setattr(check_module, "WORKERS", 1)
    alone = check(spec, documents, segments, tmp_path / "a")
    monkeypatch.setattr(check_module, "WORKERS", 2)
    pooled = check(spec, documents, segments, tmp_path / "b")
    assert pooled.segments == alone.segments == 3000
    assert pooled.characters == alone.characters
    for key, matches in alone.matches.items():
        assert np.array_equal(matches.flagged, pooled.matches[key].flagged), key
        assert matches.training == pooled.matches[key].training, key
        if matches.overlap is not None:
            assert np.array_equal(matches.overlap, pooled.matches[key].overlap), key
