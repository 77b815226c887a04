"""Benchmarks run by the release: lm-evaluation-harness on the merged model, in a child
process, its own results_*.json and samples files kept in the evaluate stage's folder.

The child is lm-eval's own command line (``python -m lm_eval run``), so the scores are
exactly what a user running ``lm_eval --model hf`` by hand would get with the same
arguments, and a crash in the harness cannot take the pipeline down with it. Progress is
read from its log: one step per task as the harness starts building its requests.

The files are read back like stored results (``cards.evals.load_results``): the card's
model-index and the gate see produced and stored scores alike.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path

from release.core.errors import WorkError
from release.core.events import Event, Reporter
from release.evaluate.loading import LoadPlan
from release.spec.schema import TasksSpec

HARNESS_DIR = "lm-eval"
"""Where in the evaluate stage's folder the harness writes, one folder per model."""
_TASK_LINE = re.compile(r"^\s*task:\s*([A-Za-z0-9_.\-]+)\s*$", re.MULTILINE)
_BUILDING = re.compile(r"Building contexts for (\S+)")


def task_names(tasks: TasksSpec) -> list[str]:
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


def harness_command(
    model_dir: Path, tasks: TasksSpec, plan: LoadPlan, out_dir: Path, *, trust_remote_code: bool
) -> list[str]:
    """``python -m lm_eval run …`` for ``model_dir``, as a user would type it."""
    if tasks.backend == "vllm":
        model_args = f"pretrained={model_dir},dtype={plan.dtype}"
        model_args += f",tensor_parallel_size={max(plan.gpus, 1)}"
    else:
        model_args = f"pretrained={model_dir},dtype={plan.dtype}"
        if plan.gpus > 1:
            model_args += ",parallelize=True"  # accelerate's device_map over the GPUs
    command = [sys.executable, "-m", "lm_eval", "run", "--model", tasks.backend]
    command += ["--model_args", model_args, "--tasks", ",".join(task_names(tasks))]
    command += ["--batch_size", str(tasks.batch_size), "--output_path", str(out_dir)]
    command += ["--log_samples", "--device", "cuda" if plan.gpus else "cpu"]
    if tasks.folder is not None:
        command += ["--include_path", str(tasks.folder)]
    if tasks.num_fewshot is not None:
        command += ["--num_fewshot", str(tasks.num_fewshot)]
    if tasks.limit is not None:
        limit = int(tasks.limit) if tasks.limit >= 1 else tasks.limit
        command += ["--limit", str(limit)]
    if tasks.apply_chat_template:
        command += ["--apply_chat_template"]
    if trust_remote_code:
        command += ["--trust_remote_code"]
    return command


def _check_backend(tasks: TasksSpec, plan: LoadPlan) -> None:
    from importlib.util import find_spec

    if tasks.backend == "vllm" and (find_spec("vllm") is None or plan.gpus == 0):
        raise WorkError(
            "eval.tasks.backend vllm needs vLLM installed and a GPU "
            f"({'no GPU' if plan.gpus == 0 else 'vllm is not installed'} here)",
            hint="use backend: hf, or run on a GPU machine with pip install vllm",
        )


def run_harness(
    model_dir: Path,
    tasks: TasksSpec,
    plan: LoadPlan,
    out_dir: Path,
    report: Reporter,
    *,
    trust_remote_code: bool,
) -> Generator[Event, None, list[Path]]:
    """Run the tasks on ``model_dir``; returns the harness's results_*.json files."""
    _check_backend(tasks, plan)
    names = task_names(tasks)
    command = harness_command(model_dir, tasks, plan, out_dir, trust_remote_code=trust_remote_code)
    yield report.log(f"lm-eval: {', '.join(names)} on {model_dir.name} ({tasks.backend})")
    yield report.progress(0, len(names), "tasks", "lm-eval: starting")
    tail: list[str] = []
    started: list[str] = []
    with subprocess.Popen(
        command,
        cwd=tasks.folder,  # a task's data_files are relative to its folder
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            tail = [*tail[-19:], line.rstrip()]
            if (match := _BUILDING.search(line)) and match[1] not in started:
                started.append(match[1])
                yield report.progress(len(started) - 1, len(names), "tasks", match[1])
        code = child.wait()
    if code != 0:
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        raise WorkError(
            f"lm-eval failed on {model_dir.name} (exit {code}): {last[-200:]}",
            hint="the line is the harness's last; its whole log: " + " ".join(command),
        )
    yield report.progress(len(names), len(names), "tasks")
    return produced_results(out_dir)


def produced_results(folder: Path) -> list[Path]:
    """The harness's results files below ``folder``, oldest first."""
    return sorted(folder.rglob("results_*.json")) if folder.is_dir() else []
