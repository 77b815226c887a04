"""eval.tasks: lm-evaluation-harness run by the evaluate stage on the merged model.

Local tasks shipped in tests/eval_tasks (multiple choice, generate-until with a regex
filter, loglikelihood perplexity, a group) run through ``model-release run`` on a tiny
model; every score must equal what ``lm_eval run --model hf`` gives when run directly on
the same model with the same arguments, and the harness's own files stay in the
workspace.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import io
import shutil
import subprocess
import sys
from pathlib import Path, PurePath

import pytest

from cards.evals import load_results
from cards.records import EvalRecord
from release.cli import main
from release.core.manifest import MANIFEST_NAME, Manifest
from release.evaluate.facts import EvaluateFacts

TASKS = Path(__file__).resolve().parent / "eval_tasks"
SPEC = """name: tiny
version: 0.1.0
base:
  path: {base}
adapter:
  path: adapter
gguf:
  types: [q8_0]
eval:
  prompts: [Hi]
  max_new_tokens: 8
  tasks:
    folder: {tasks}
    names: [mr_group, mr_perplexity]
"""


def test_a_spec_with_eval_tasks_and_no_harness_is_one_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a)
    )
    spec = tmp_path / "release.yaml"
    (tmp_path / "adapter").mkdir()
    spec.write_text(SPEC.format(base=tmp_path, tasks=TASKS))
    code = main(["spec", "check", str(spec)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.splitlines()[-1] == (
        f"{spec}:13: eval.tasks: lm-evaluation-harness is not installed: "
        "pip install 'model-release[lm-eval]'"
    )


def test_compare_base_on_a_base_merged_dequantized_is_one_line(tmp_path, capsys):
    """lm-eval would load the 4-bit checkpoint, not the dequantized base the merge used."""
    spec = tmp_path / "release.yaml"
    (tmp_path / "adapter").mkdir()
    text = SPEC.format(base=tmp_path, tasks=TASKS) + "    compare_base: true\n"
    text = text.replace(f"  path: {tmp_path}\n", f"  path: {tmp_path}\n  dequantize: true\n")
    spec.write_text(text)
    code = main(["spec", "check", str(spec)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.splitlines()[-1] == (
        f"{spec}:11: eval: tasks.compare_base cannot run on a base that needs "
        "base.dequantize: lm-eval loads the 4-bit checkpoint, not the dequantized base the "
        "merge used; leave compare_base out"
    )


@dataclasses.dataclass(frozen=True)
class Compared:
    """The tiny release with compare_base on, made once for the module by `model-release
    run` (in a GitHub Actions job: its summary is written too), and lm-eval's own scores
    of its merged model and of its base."""

    root: Path
    spec: Path
    printed: str
    facts: EvaluateFacts
    summary: Path
    direct_merged: dict[tuple[str, str, str], float]
    direct_base: dict[tuple[str, str, str], float]


@pytest.fixture(scope="module")
def compared(tiny_llama_dir, tmp_path_factory) -> Compared:
    from tests.support.lora_models import make_adapter

    root = tmp_path_factory.mktemp("compared")
    summary = root / "step_summary.md"
    make_adapter(tiny_llama_dir, root / "adapter", target_modules=["q_proj", "v_proj"])
    spec = root / "release.yaml"
    text = SPEC.format(base=tiny_llama_dir, tasks=TASKS).replace("[q8_0]", "[]")
    spec.write_text(text + "    compare_base: true\n")
    stages = ["--stage", "adapter", "--stage", "merge", "--stage", "evaluate", "--stage", "card"]
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        # no base figures kept: the run makes its own, as a test's run does
        patch.setenv("MODEL_RELEASE_EVAL_CACHE", str(tmp_path_factory.mktemp("eval_cache")))
        patch.setenv("COLUMNS", "160")  # rich shortens cells to fit 80 columns
        patch.setenv("GITHUB_ACTIONS", "true")
        patch.setenv("GITHUB_WORKSPACE", str(root))
        patch.setenv("GITHUB_STEP_SUMMARY", str(summary))
        patch.setenv("GITHUB_OUTPUT", str(root / "github_output"))
        assert main(["run", str(spec), *stages]) == 0
    facts = EvaluateFacts.of(Manifest.load(root / "build" / MANIFEST_NAME))
    direct = tmp_path_factory.mktemp("direct")
    direct_merged, direct_base = _direct_lm_evals(
        [(root / "build" / "merge", direct / "merged"), (tiny_llama_dir, direct / "base")]
    )
    return Compared(root, spec, printed.getvalue(), facts, summary, direct_merged, direct_base)


def test_scores_equal_a_direct_lm_eval_run(compared):
    root, facts, printed = compared.root, compared.facts, compared.printed
    workspace = root / "build"
    ours = _scores(facts.results)
    produced = sorted(p for p in (workspace / "evaluate" / "lm-eval").rglob("*") if p.is_file())
    assert facts.harness.files == [str(p.relative_to(workspace / "evaluate")) for p in produced]
    assert (facts.harness.tasks, facts.harness.dtype) == (["mr_group", "mr_perplexity"], "float32")
    assert any(p.name.startswith("results_") for p in produced)
    assert any(p.name.startswith("samples_mr_choice") for p in produced)

    theirs = compared.direct_merged
    assert theirs and ours == {key: theirs[key] for key in ours}
    assert {key[0] for key in ours} >= {"mr_choice", "mr_generate", "mr_perplexity"}
    assert ("mr_generate", "exact_match", "first_number") in ours
    # each score's source is where its results file lies once the stage is done
    (source,) = {r.source for r in facts.results}
    assert source.startswith("build/evaluate/lm-eval/") and (root / source).is_file()

    # the CLI's table: one row per score, as the harness reported it (the base's two
    # columns close each row: test_compare_base_shows_the_base_s_scores_beside_the_release_s)
    rows = [line.split() for line in printed.splitlines() if line.startswith("  mr_")]
    assert {(row[0], row[1], row[2]): row[3] for row in rows} == {
        key: f"{value:.4g}" for key, value in ours.items()
    }
    # without a base's scores, the table has no base columns
    from release.report.console import scores_table

    alone = scores_table(facts.results, [])
    assert [column.header for column in alone.columns][3:] == ["value", "± stderr", "shots"]
    assert list(alone.columns[3].cells) == [f"{value:.4g}" for value in ours.values()]

    from release.tui.panes.evaluate import _scores_table

    table = _scores_table(facts)
    assert [cell for cell in table.columns[0].cells] == [r.task for r in facts.results]


def test_a_task_the_harness_cannot_run_fails_the_stage_in_one_line(
    tiny_llama_dir, tmp_path, capsys
):
    """A task whose data file is missing: lm-eval's child fails; the stage fails with the
    harness's last line and how to see its whole log, and keeps nothing."""
    from tests.support.lora_models import make_adapter

    make_adapter(tiny_llama_dir, tmp_path / "adapter", target_modules=["q_proj", "v_proj"])
    tasks = tmp_path / "tasks"
    shutil.copytree(TASKS, tasks)
    (tasks / "facts.jsonl").unlink()  # mr_choice's data
    spec = tmp_path / "release.yaml"
    text = SPEC.format(base=tiny_llama_dir, tasks=tasks).replace("[q8_0]", "[]")
    spec.write_text(text.replace("[mr_group, mr_perplexity]", "[mr_choice]"))
    stages = ["--stage", "adapter", "--stage", "merge", "--stage", "evaluate"]
    capsys.readouterr()
    assert main(["run", str(spec), *stages]) == 1
    err = capsys.readouterr().err
    assert "lm-eval failed on this release (exit 1): " in err, err
    assert "for its whole log, run it by hand: " in err and " -m lm_eval run " in err, err
    assert "Traceback" not in err and "this is a bug" not in err
    assert not (tmp_path / "build" / "evaluate").exists()
    assert EvaluateFacts.stage not in Manifest.load(tmp_path / "build" / MANIFEST_NAME).stages


def test_vllm_without_a_gpu_is_one_line_before_anything_runs(tmp_path):
    from release.core.errors import WorkError
    from release.evaluate.harness import HARNESS_DIR, HarnessModel, run_harness
    from release.evaluate.launch import choose_launch
    from release.spec.schema import TasksSpec

    tasks = TasksSpec(names=["mr_choice"], folder=TASKS, backend="vllm")
    cpu = choose_launch("vllm", 0, 0, 10**9)
    out = tmp_path / "out"
    model = HarnessModel(tmp_path, "x", HARNESS_DIR)
    run = run_harness(model, tasks, "float32", cpu, out, None, trust_remote_code=False)
    with pytest.raises(WorkError) as failed:
        next(run)
    assert str(failed.value).startswith("eval.tasks.backend vllm needs vLLM installed and a GPU")
    assert "use backend: hf" in failed.value.hint
    assert not (tmp_path / "out").exists()


def _wrong_scale(adapter: Path, folder: Path, factor: float) -> Path:
    """``adapter`` with every lora_B times ``factor``: a LoRA saved with the wrong scale."""
    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True)
    shutil.copy(adapter / "adapter_config.json", folder / "adapter_config.json")
    tensors = load_file(adapter / "adapter_model.safetensors")
    scaled = {k: v * factor if "lora_B" in k else v for k, v in tensors.items()}
    save_file(scaled, folder / "adapter_model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.mark.slow
def test_smollm2_beside_its_base_and_a_broken_adapter_gated_against_it(
    smollm2_base_dir, smollm2_adapter_dir, tmp_path, capsys
):
    """SmolLM2 with its trained LoRA is released with scores lm-eval produced, compare_base
    on: through ``model-release run``, the base's scores are those ``lm_eval --model hf``
    gives on the base itself, the release's those it gives on the merged model, and the
    card puts them side by side. The same LoRA at three times its scale passes the sanity
    checks (its held-out perplexity ×1.45, limit ×1.5) but not the gate against the good
    release's scores. (One test: the good release is the expensive part.)"""
    spec_text = SPEC.replace("[q8_0]", "[]").replace("max_new_tokens: 8", "max_new_tokens: 6")
    stages = ["--stage", "adapter", "--stage", "merge", "--stage", "evaluate"]
    good = tmp_path / "good"
    shutil.copytree(smollm2_adapter_dir, good / "adapter")
    text = spec_text.format(base=smollm2_base_dir, tasks=TASKS)
    (good / "release.yaml").write_text(text + "    compare_base: true\n")
    assert main(["run", str(good / "release.yaml"), *stages, "--stage", "card"]) == 0
    manifest = good / "build" / MANIFEST_NAME
    facts = EvaluateFacts.of(Manifest.load(manifest))
    assert {r.task for r in facts.results} >= {"mr_choice", "mr_generate", "mr_perplexity"}

    ours, base = _scores(facts.results), _scores(facts.base_results)
    theirs, merged = _direct_lm_evals(
        [(smollm2_base_dir, tmp_path / "base"), (good / "build" / "merge", tmp_path / "merged")],
        facts.harness.dtype,
    )
    assert base == {key: theirs[key] for key in ours}
    assert ours == {key: merged[key] for key in ours}
    perplexity = ("mr_perplexity", "word_perplexity", "none")
    assert base[perplexity] != ours[perplexity]
    card = (good / "build" / "card" / "README.md").read_text()
    header = "| Task | Metric | n-shot | Score | Stderr | Base model | Difference | Source |"
    assert {(row[3], row[5], row[6]) for row in _markdown_rows(card, header)} == {
        (f"{value:.4f}", f"{base[key]:.4f}", f"{value - base[key]:+.4f}")
        for key, value in ours.items()
    }

    broken = tmp_path / "broken"
    _wrong_scale(smollm2_adapter_dir, broken / "adapter", 3.0)
    text = spec_text.format(base=smollm2_base_dir, tasks=TASKS)
    text += f"  previous: [{manifest}]\n"
    (broken / "release.yaml").write_text(text.replace("version: 0.1.0", "version: 0.2.0"))
    capsys.readouterr()
    assert main(["run", str(broken / "release.yaml"), *stages]) == 1
    err = capsys.readouterr().err
    assert "regression gate failed against the last release: " in err, err
    assert "mr_perplexity word_perplexity" in err, err
    refused = Manifest.load(broken / "build" / MANIFEST_NAME).refused[EvaluateFacts.stage]
    gate = EvaluateFacts.model_validate(refused.facts).gate
    assert not gate.passed
    assert any(c.task == "mr_perplexity" and c.drop > 0.2 for c in gate.compared)


def _direct_lm_evals(
    runs: list[tuple[Path, Path]], dtype: str = "float32"
) -> list[dict[tuple[str, str, str], float]]:
    """``_direct_lm_eval`` of each ``(model_dir, out)`` of ``runs``, side by side: a run
    is mostly the harness and torch starting up."""
    with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
        return list(pool.map(lambda run: _direct_lm_eval(*run, dtype), runs))


def _direct_lm_eval(
    model_dir: Path, out: Path, dtype: str = "float32"
) -> dict[tuple[str, str, str], float]:
    """The scores ``lm_eval run --model hf`` gives on ``model_dir`` for SPEC's tasks."""
    command = [sys.executable, "-m", "lm_eval", "run", "--model", "hf"]
    command += ["--model_args", f"pretrained={model_dir},dtype={dtype}"]
    command += ["--tasks", "mr_group,mr_perplexity", "--include_path", str(TASKS)]
    command += ["--batch_size", "1", "--device", "cpu", "--output_path", str(out)]
    done = subprocess.run(command, cwd=TASKS, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    (results,) = out.rglob("results_*.json")
    return {r.key: r.value for r in load_results([results])}


def _markdown_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header line is ``header``."""
    rows = []
    for line in text[text.index(header) :].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def _scores(results: list[EvalRecord]) -> dict[tuple[str, str, str], float]:
    return {r.key: r.value for r in results}


def test_compare_base_shows_the_base_s_scores_beside_the_release_s(compared, capsys):
    """eval.tasks.compare_base: the same tasks run on the base; its scores equal a direct
    lm_eval run on the base, stand beside this release's in the card (with the
    difference), the CLI's table, the wizard and the job summary, and never enter the
    model-index."""
    root, facts, printed, summary = (
        compared.root,
        compared.facts,
        compared.printed,
        compared.summary,
    )
    workspace = root / "build"
    ours, base = _scores(facts.results), _scores(facts.base_results)
    assert base.keys() == ours.keys()
    direct = compared.direct_base
    assert base == {key: direct[key] for key in base}
    assert base != ours  # the base ran, not the merged model again
    # the base's files lie apart from the release's: the model-index reads only these
    assert facts.harness.base_files and facts.harness.files
    assert all(f.startswith("lm-eval-base/") for f in facts.harness.base_files)
    assert all(f.startswith("lm-eval/") for f in facts.harness.files)
    (source,) = {r.source for r in facts.base_results}
    assert source.startswith("build/evaluate/lm-eval-base/") and (root / source).is_file()
    assert facts.harness.launch.describe() == "cpu: no GPU"

    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    card = ModelCard.load(workspace / "card" / "README.md")
    _, indexed = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert sorted((r.dataset_name, r.metric_type, r.metric_value) for r in indexed) == sorted(
        (task, metric, value) for (task, metric, _), value in ours.items()
    )
    header = "| Task | Metric | n-shot | Score | Stderr | Base model | Difference | Source |"
    assert {(row[3], row[5], row[6]) for row in _markdown_rows(card.text, header)} == {
        (f"{value:.4f}", f"{base[key]:.4f}", f"{value - base[key]:+.4f}")
        for key, value in ours.items()
    }

    # the CLI's table: the base's score and the difference close each row
    lines = [line.split() for line in printed.splitlines() if line.startswith("  mr_")]
    assert {tuple(row[:3]): row[-2:] for row in lines} == {
        key: [f"{base[key]:.4g}", f"{ours[key] - base[key]:+.4g}"] for key in ours
    }

    # the wizard's eval step
    from release.tui.panes.evaluate import _scores_table

    table = _scores_table(facts)
    assert [column.header for column in table.columns][-2:] == ["base", "difference"]
    assert list(table.columns[-2].cells) == [f"{base[key]:.4g}" for key in ours]

    # the job summary
    written = summary.read_text()
    columns = "| Task | Metric | Value | ± stderr | Shots | Previous | Change | Base | Difference |"
    rows = _markdown_rows(written, columns)
    assert {(row[0], row[1], row[2], row[7], row[8]) for row in rows} == {
        (task, metric, f"{value:.4g}", f"{base[key]:.4g}", f"{value - base[key]:+.4g}")
        for key, value in ours.items()
        for task, metric, _ in [key]
    }

    # the same model, tasks and settings again: skipped, base run included
    stages = ["--stage", "adapter", "--stage", "merge", "--stage", "evaluate", "--stage", "card"]
    capsys.readouterr()
    assert main(["run", str(compared.spec), *stages]) == 0
    assert "evaluate: skipped (unchanged since" in capsys.readouterr().out


@pytest.mark.anyio
async def test_the_wizard_s_eval_step_shows_the_tasks_their_progress_and_scores(
    tiny_llama_dir, tmp_path, monkeypatch
):
    """Issue #16 item 6 in the wizard: before the run the eval step names the benchmarks;
    while it runs, its progress line names each task on this release, then on the base;
    after it, the scores table with the base's column."""
    from release.tui.app import make_wizard
    from release.tui.widgets.stage_run import StageRun
    from tests.support.lora_models import make_adapter
    from tests.support.tui_pilot import SIZE, opened, settle, show, text_of

    make_adapter(tiny_llama_dir, tmp_path / "adapter", target_modules=["q_proj", "v_proj"])
    spec = tmp_path / "release.yaml"
    text = SPEC.format(base=tiny_llama_dir, tasks=TASKS).replace("[q8_0]", "[]")
    spec.write_text(text + "    compare_base: true\n")
    shown: list[str] = []
    progress = StageRun.progress
    monkeypatch.setattr(
        StageRun, "progress", lambda run, event: (shown.append(event.message), progress(run, event))
    )
    app = make_wizard(spec)
    async with app.run_test(size=SIZE) as pilot:
        screen = await opened(app, pilot)
        await show(app, pilot, "evaluate")
        assert text_of(app, "#pane-evaluate .benchmarks").strip() == (
            "Benchmarks (lm-eval, hf): mr_group, mr_perplexity; on the base too, for comparison"
        )
        for stage in ("adapter", "merge", "evaluate"):
            await show(app, pilot, stage)
            await pilot.press("ctrl+r")
            await settle(app, pilot)
            assert screen.states[stage] == "done", text_of(app, f"#pane-{stage} StageRun #state")
        facts = text_of(app, "#pane-evaluate .facts")

    # bursts of progress merge into one update (the wizard keeps up with the last), so
    # a task that started right after another may not be seen on its own
    expected = [
        f"{task} ({model})"
        for model in ("this release", "the base")
        for task in ("mr_choice", "mr_generate", "mr_perplexity")
    ]
    tasks = [message for message in shown if message.startswith("mr_")]
    assert tasks == sorted(set(tasks), key=expected.index), shown
    assert {task.partition(" ")[2] for task in tasks} == {"(this release)", "(the base)"}
    manifest = EvaluateFacts.of(Manifest.load(tmp_path / "build" / MANIFEST_NAME))
    assert "Benchmarks" in facts and "difference" in facts.split("Benchmarks")[1]
    assert "lm-eval hf, cpu: no GPU" in facts  # how it was launched
    for result in manifest.results:
        assert result.task in facts


def test_a_recipe_s_inputs_are_scored_beside_the_merge(tiny_llama_dir, tmp_path):
    """Issue #29 item 5: with a merge recipe, eval.tasks run on each input too (a LoRA as
    lm-eval's users load it: the base with ``peft=``), stand in the card's "Merged vs
    inputs" table beside its perplexity, and the gate holds the merge to the named
    input's scores. Two lm-eval runs: the recipe adds the one LoRA at weight 1 in
    float32, so the merged model is base + LoRA and lm-eval's scores of the LoRA through
    its own ``peft=`` equal its scores of the merged folder (which equal a direct run:
    ``test_scores_equal_a_direct_lm_eval_run``); were ``peft=`` lost they would be the
    base's, which the LoRA moves (its held-out perplexity is not the base's)."""
    from tests.support.lora_models import make_adapter

    make_adapter(tiny_llama_dir, tmp_path / "a", seed=21, target_modules=["q_proj", "v_proj"])
    spec = tmp_path / "release.yaml"
    spec.write_text(
        f"name: tiny\nversion: 0.1.0\nbase:\n  path: {tiny_llama_dir}\n"
        "merge:\n  recipe:\n    merge_method: task_arithmetic\n"
        f"    base_model: {tiny_llama_dir}\n    dtype: float32\n"
        "    models: [{model: a, parameters: {weight: 1.0}}]\n"
        f"gguf:\n  types: []\neval:\n  prompts: []\n  tasks:\n    folder: {TASKS}\n"
        "    names: [mr_choice, mr_perplexity]\n  gate: {no_worse_than: a, tolerance: 0.01}\n"
    )
    stages = ["--stage", "adapter", "--stage", "merge", "--stage", "evaluate", "--stage", "card"]
    assert main(["run", str(spec), *stages]) == 0

    workspace = tmp_path / "build"
    facts = EvaluateFacts.of(Manifest.load(workspace / MANIFEST_NAME))
    ours = _scores(facts.results)
    base, a = facts.merge_inputs.models
    assert (base.kind, a.name, a.kind) == ("base", "a", "lora")
    assert base.results == []  # no compare_base, and the gate names the LoRA
    assert abs(a.perplexity / base.perplexity - 1) > 1e-3  # the LoRA moves the model (3e-3)
    theirs = _scores(a.results)
    assert theirs.keys() == ours.keys() and len(ours) == 4
    assert theirs == pytest.approx(ours, rel=1e-4)
    assert {PurePath(f).parts[1] for f in facts.harness.input_files} == {"1-a"}
    (source,) = {r.source for r in a.results}
    assert source.startswith("build/evaluate/lm-eval-inputs/1-a/") and (tmp_path / source).is_file()
    compared = {
        (c.task, c.metric): (c.previous, c.current) for c in facts.merge_inputs.gate.compared
    }
    assert compared == {(t, m): (theirs[t, m, f], v) for (t, m, f), v in ours.items()}

    card = (workspace / "card" / "README.md").read_text()
    header = (
        "| Model | Kind | Perplexity | mr_choice acc | mr_perplexity bits_per_byte "
        "| mr_perplexity byte_perplexity | mr_perplexity word_perplexity |"
    )
    rows = {row[0]: row[1:] for row in _markdown_rows(card, header)}
    keys = [r.key for r in facts.results]
    assert rows == {
        f"`{base.name}`": ["base model", f"{base.perplexity:.2f}", "", "", "", ""],
        "`a`": ["base + LoRA adapter", f"{a.perplexity:.2f}"] + [f"{theirs[k]:.4f}" for k in keys],
        "**this merge**": ["merged", f"**{facts.perplexity.merged:.2f}**"]
        + [f"**{ours[k]:.4f}**" for k in keys],
    }
    assert "each benchmark score at most 1% below its own" in card
