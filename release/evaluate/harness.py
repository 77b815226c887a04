"""Benchmarks run by the release: lm-evaluation-harness on the merged model, in a child
process, its own results_*.json and samples files kept in the evaluate stage's folder.

The child is lm-eval's own command line (``python -m lm_eval run``), so the scores are
exactly what a user running ``lm_eval --model hf`` by hand would get with the same
arguments, and a crash in the harness cannot take the pipeline down with it. Progress is
read from its log (``harness_log``): each task as it is built, then its requests as they run.

The files are read back like stored results and recorded (``HarnessFacts.results``);
``release.evaluate.scores`` merges them with the stored ones for the gate and the card.
With compare_base the same command runs on the base, into its own folder: its scores
only stand beside this release's (``cards.baseline``), never in its model-index or its
gate. A merge recipe's release runs it on each input of the recipe likewise (a LoRA as
the base with lm-eval's own ``peft=`` argument, as its users load it), each into its own
folder below ``INPUTS_HARNESS_DIR``: the "Merged vs inputs" table and eval.gate's
no_worse_than read them.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cards.evals import load_results
from cards.records import EvalRecord
from release.checkpoint.safetensors import parameter_counts
from release.core.child_python import PYTHON, project_env
from release.core.errors import WorkError
from release.core.events import Event, Reporter
from release.evaluate.facts import HarnessFacts
from release.evaluate.harness_log import HarnessLog
from release.evaluate.launch import Launch, choose_launch, gpu_memory
from release.evaluate.loading import LoadPlan
from release.spec.schema import TasksSpec

HARNESS_DIR = "lm-eval"
"""Where in the evaluate stage's folder the harness writes on the merged model."""
BASE_HARNESS_DIR = "lm-eval-base"
"""Where it writes on the base (eval.tasks.compare_base): apart, so the release's own
scores (the model-index, the gate) are only ever read from ``HARNESS_DIR``."""
INPUTS_HARNESS_DIR = "lm-eval-inputs"
"""Where it writes on a merge recipe's inputs, one folder each (``HarnessModel.folder``)."""
LLAMA_CPP_MODEL = "llama-cpp"
"""The name ``release.evaluate.llama_cpp_lm`` gives its model in lm-eval's registry."""
LLAMA_CPP_LM = "release.evaluate.llama_cpp_lm"
"""That module: run as lm-eval's command line with the model registered."""
_TASK_LINE = re.compile(r"^\s*task:\s*([A-Za-z0-9_.\-]+)\s*$", re.MULTILINE)


class NamedTasks(Protocol):
    """Which tasks: eval.tasks, or the part of it the contamination check reads."""

    @property
    def names(self) -> list[str]: ...

    @property
    def folder(self) -> Path | None: ...


def task_names(tasks: NamedTasks) -> list[str]:
    """The names given, else every ``task:`` of the folder's YAML files."""
    if tasks.names:
        return list(tasks.names)
    found = []
    for path in sorted(tasks.folder.rglob("*.yaml")) if tasks.folder else []:
        found += _TASK_LINE.findall(path.read_text(encoding="utf-8"))
    if not found:
        raise WorkError(
            f"{tasks.folder}: no task YAML files (a file with 'task: NAME')",
            hint="fix eval.tasks.folder in release.yaml, or give eval.tasks.names",
        )
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class HarnessModel:
    """One model the harness runs on, and where its files go."""

    pretrained: Path
    label: str
    """Which model it is, for the log and the progress lines."""
    folder: str
    """Below the evaluate stage's folder."""
    peft: Path | None = None
    """A LoRA applied on ``pretrained`` (lm-eval's ``peft=``), unmerged."""


def harness_command(
    model: HarnessModel,
    tasks: TasksSpec,
    dtype: str,
    launch: Launch,
    out_dir: Path,
    *,
    trust_remote_code: bool,
) -> list[str]:
    """``lm_eval run …`` for ``model`` as a user would type it, launched as ``launch``
    says (``release.evaluate.launch``)."""
    adapter = [f"peft={model.peft}"] if model.peft is not None else []
    model_args = [f"pretrained={model.pretrained}", *adapter, f"dtype={dtype}"]
    model_args = ",".join([*model_args, *launch.model_args])
    command = [*launch.prefix(), "run", "--model", tasks.backend, "--model_args", model_args]
    command += ["--device", "cpu" if launch.mode == "cpu" else "cuda"]
    command += _task_arguments(tasks, out_dir)
    if trust_remote_code:
        command += ["--trust_remote_code"]
    return command


def gguf_harness_command(gguf_file: Path, tasks: TasksSpec, out_dir: Path) -> list[str]:
    """The same tasks on a GGUF file, run by llama.cpp in process: lm-eval's command line
    with our model registered (``release.evaluate.llama_cpp_lm``)."""
    command = [*PYTHON, "-m", LLAMA_CPP_LM, "run", "--model", LLAMA_CPP_MODEL]
    command += ["--model_args", f"pretrained={gguf_file}"]
    return command + _task_arguments(tasks, out_dir, samples=False)


def _task_arguments(tasks: TasksSpec, out_dir: Path, *, samples: bool = True) -> list[str]:
    """What of lm-eval's command line says which tasks run, how, and where it writes
    (``samples``: each document's answers too): the same for every model they run on."""
    command = ["--tasks", ",".join(task_names(tasks))]
    command += ["--batch_size", str(tasks.batch_size), "--output_path", str(out_dir)]
    command += ["--log_samples"] if samples else []
    if tasks.folder is not None:
        command += ["--include_path", str(tasks.folder)]
    if tasks.num_fewshot is not None:
        command += ["--num_fewshot", str(tasks.num_fewshot)]
    if tasks.limit is not None:
        limit = int(tasks.limit) if tasks.limit >= 1 else tasks.limit
        command += ["--limit", str(limit)]
    if tasks.apply_chat_template:
        command += ["--apply_chat_template"]
    return command


def _check_backend(tasks: TasksSpec, launch: Launch) -> None:
    from importlib.util import find_spec

    if tasks.backend == "vllm" and (find_spec("vllm") is None or launch.mode == "cpu"):
        raise WorkError(
            "eval.tasks.backend vllm needs vLLM installed and a GPU "
            f"({'no GPU' if launch.mode == 'cpu' else 'vllm is not installed'} here)",
            hint="use backend: hf, or run on a GPU machine with pip install vllm",
        )


def run_harness(
    model: HarnessModel,
    tasks: TasksSpec,
    dtype: str,
    launch: Launch,
    out_dir: Path,
    report: Reporter,
    *,
    trust_remote_code: bool,
) -> Generator[Event, None, list[Path]]:
    """Run the tasks on ``model``; returns the harness's results_*.json files."""
    _check_backend(tasks, launch)
    command = harness_command(
        model, tasks, dtype, launch, out_dir, trust_remote_code=trust_remote_code
    )
    return (yield from run_command(command, model.label, tasks, tasks.backend, out_dir, report))


def run_command(
    command: list[str],
    label: str,
    tasks: TasksSpec,
    backend: str,
    out_dir: Path,
    report: Reporter,
) -> Generator[Event, None, list[Path]]:
    """Run lm-eval's ``command`` (``label``: on which model, ``backend``: through what, for
    the log), its progress read from its log; returns its results_*.json files, or
    raises its last line as a one-line error."""
    names = task_names(tasks)
    yield report.log(f"lm-eval: {', '.join(names)} on {label} ({backend})")
    yield report.progress(0, len(names), "tasks", f"lm-eval on {label}: starting")
    tail: list[str] = []
    steps = HarnessLog(names)
    with subprocess.Popen(
        command,
        cwd=tasks.folder,  # a task's data_files are relative to its folder
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=project_env() | {"PYTHONUNBUFFERED": "1"},  # each task's line as it starts
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            tail = [*tail[-19:], line.rstrip()]
            if step := steps.read(line):
                yield report.progress(step.done, step.total, step.unit, f"{step.what} ({label})")
        code = child.wait()
    if code != 0:
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        raise WorkError(
            f"lm-eval failed on {label} (exit {code}): {last[-200:]}",
            hint="that is the harness's last line; for its whole log, run it by hand: "
            + shlex.join(command),
        )
    yield report.progress(len(names), len(names), "tasks")
    return produced_results(out_dir)


def run_gguf_tasks(
    tasks: TasksSpec, path: Path, report: Reporter
) -> Generator[Event, None, list[EvalRecord]]:
    """eval.tasks on the GGUF file ``path``, run by llama.cpp in process; its scores, each
    with the file's name as its model and source. The harness's files are read and
    dropped: the GGUF stage's folder is what the GGUF repo publishes, and the scores are
    kept in its facts."""
    with tempfile.TemporaryDirectory(prefix="lm-eval-gguf-") as out:
        command = gguf_harness_command(path, tasks, Path(out))
        produced = yield from run_command(command, path.name, tasks, "llama.cpp", Path(out), report)
        named = {"model": path.name, "source": path.name}
        return [record.model_copy(update=named) for record in load_results(produced)]


def produced_results(folder: Path) -> list[Path]:
    """The harness's results files below ``folder``, oldest first."""
    return sorted(folder.rglob("results_*.json")) if folder.is_dir() else []


@dataclass(frozen=True)
class HarnessRun:
    facts: HarnessFacts
    produced: list[Path]
    """This release's results files, where the harness wrote them."""
    base_produced: list[Path]
    """The base's (eval.tasks.compare_base), likewise."""
    inputs_produced: dict[str, list[Path]]
    """A merge recipe's inputs', by ``HarnessModel.folder``, likewise."""


def run_tasks(
    tasks: TasksSpec,
    merged_dir: Path,
    base_dir: Path,
    plan: LoadPlan,
    out_dir: Path,
    report: Reporter,
    *,
    trust_remote_code: bool,
    inputs: Sequence[HarnessModel] = (),
) -> Generator[Event, None, HarnessRun]:
    """eval.tasks on the merged model, then with compare_base on the base, then on each
    of ``inputs`` (a merge recipe's), with the same arguments and launch; the files go
    below ``out_dir`` (the stage's folder)."""
    from importlib.util import find_spec

    parameters, _ = parameter_counts(merged_dir)
    launch = choose_launch(
        tasks.backend,
        plan.gpus,
        gpu_memory() if plan.gpus else 0,
        parameters * plan.bytes_per_parameter,
        ray=find_spec("ray") is not None,
    )
    yield report.log(f"lm-eval launch: {launch.describe()}")
    models = [HarnessModel(merged_dir, "this release", HARNESS_DIR)]
    if tasks.compare_base:
        models.append(HarnessModel(base_dir, "the base", BASE_HARNESS_DIR))
    produced: dict[str, list[Path]] = {}
    for model in [*models, *inputs]:
        produced[model.folder] = yield from run_harness(
            model,
            tasks,
            plan.dtype,
            launch,
            out_dir / model.folder,
            report,
            trust_remote_code=trust_remote_code,
        )
    facts = HarnessFacts(
        tasks=task_names(tasks),
        backend=tasks.backend,
        dtype=plan.dtype,
        launch=launch,
        files=_files(out_dir, HARNESS_DIR),
        base_files=_files(out_dir, BASE_HARNESS_DIR),
        input_files=_files(out_dir, INPUTS_HARNESS_DIR),
    )
    beside = {model.folder: produced[model.folder] for model in inputs}
    return HarnessRun(facts, produced[HARNESS_DIR], produced.get(BASE_HARNESS_DIR, []), beside)


def _files(out_dir: Path, folder: str) -> list[str]:
    """The files below ``out_dir / folder``, relative to ``out_dir``."""
    return sorted(str(p.relative_to(out_dir)) for p in (out_dir / folder).rglob("*") if p.is_file())
