"""How eval.tasks' lm-eval run is launched on the GPUs there are (release.evaluate.launch):
the rule for each backend, GPU count and model size, the command it gives, and progress
per task when several processes print.

No GPU here: the decision is a pure function of the GPU count, one GPU's memory and the
weights' size, and the commands are checked against accelerate's own parser and lm-eval
0.4.13's README forms."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from release.evaluate.harness import HARNESS_DIR, HarnessModel, harness_command
from release.evaluate.harness_log import HarnessLog, Step
from release.evaluate.launch import Launch, choose_launch
from release.spec.schema import TasksSpec

GiB = 2**30
H100 = 80 * GiB
TASKS = Path(__file__).resolve().parent / "eval_tasks"


@pytest.mark.parametrize(
    ("backend", "gpus", "weights", "ray", "mode", "processes", "model_args"),
    [
        ("hf", 0, 16 * GiB, False, "cpu", 1, ()),
        ("hf", 1, 16 * GiB, False, "one GPU", 1, ()),
        ("hf", 1, 70 * GiB, False, "model parallel", 1, ("parallelize=True",)),
        ("hf", 4, 16 * GiB, False, "data parallel", 4, ()),
        ("hf", 4, 64 * GiB, False, "data parallel", 4, ()),  # exactly 80% of one GPU
        ("hf", 4, 65 * GiB, False, "model parallel", 1, ("parallelize=True",)),
        ("hf", 8, 62 * GiB * 2, False, "model parallel", 1, ("parallelize=True",)),
        (
            "vllm",
            4,
            16 * GiB,
            True,
            "data parallel",
            1,
            ("tensor_parallel_size=1", "data_parallel_size=4"),
        ),
        ("vllm", 4, 16 * GiB, False, "tensor parallel", 1, ("tensor_parallel_size=4",)),
        ("vllm", 4, 65 * GiB, True, "tensor parallel", 1, ("tensor_parallel_size=4",)),
        ("vllm", 1, 16 * GiB, True, "tensor parallel", 1, ("tensor_parallel_size=1",)),
    ],
)
def test_the_launch_follows_the_model_s_size_and_the_gpus(
    backend, gpus, weights, ray, mode, processes, model_args
):
    launch = choose_launch(backend, gpus, H100 if gpus else 0, weights, ray=ray)
    assert (launch.mode, launch.processes, launch.model_args) == (mode, processes, model_args)


def test_the_reason_names_both_sizes_and_what_is_missing():
    assert choose_launch("hf", 0, 0, GiB).describe() == "cpu: no GPU"
    assert choose_launch("hf", 4, H100, 16 * GiB).describe() == (
        "data parallel, 4 processes: 16.0 GiB of weights fit in 80% of one GPU's 80.0 GiB: "
        "one copy per GPU"
    )
    assert choose_launch("hf", 2, H100, 70 * GiB).describe() == (
        "model parallel (parallelize=True): 70.0 GiB of weights exceed 80% of one GPU's 80.0 GiB"
    )
    assert choose_launch("vllm", 2, H100, 16 * GiB).reason.endswith(
        "(data parallel needs ray: pip install ray)"
    )


def _command(launch: Launch) -> list[str]:
    tasks = TasksSpec(names=["mr_choice", "mr_perplexity"], folder=TASKS, batch_size=8)
    model = HarnessModel(Path("/m"), "this release", HARNESS_DIR)
    return harness_command(model, tasks, "bfloat16", launch, Path("/out"), trust_remote_code=False)


def test_data_parallel_runs_lm_eval_under_accelerate_s_launcher():
    """lm-eval's README: ``accelerate launch --multi_gpu --num_processes N -m lm_eval …``;
    the launcher's own parser reads ours as that."""
    from accelerate.commands.launch import launch_command_parser

    command = _command(choose_launch("hf", 4, H100, 16 * GiB))
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    parsed = launch_command_parser().parse_args(command[3:])
    assert (parsed.multi_gpu, parsed.num_processes, parsed.module) == (True, 4, True)
    assert parsed.training_script == "lm_eval"
    lm_eval_args = parsed.training_script_args
    assert lm_eval_args[:3] == ["run", "--model", "hf"]
    assert lm_eval_args[lm_eval_args.index("--model_args") + 1] == "pretrained=/m,dtype=bfloat16"
    assert lm_eval_args[lm_eval_args.index("--device") + 1] == "cuda"


@pytest.mark.parametrize(
    ("backend", "gpus", "weights", "ray", "extra"),
    [
        ("hf", 2, 70 * GiB, False, {"parallelize": True}),
        ("hf", 0, GiB, False, {}),
        ("vllm", 2, 70 * GiB, True, {"tensor_parallel_size": 2}),
        ("vllm", 2, GiB, True, {"tensor_parallel_size": 1, "data_parallel_size": 2}),
    ],
)
def test_one_process_carries_the_launch_in_its_model_args(backend, gpus, weights, ray, extra):
    """One process (no launcher) for model parallel, vLLM and the CPU; lm-eval's own
    command line reads what we pass."""
    from lm_eval._cli.harness import HarnessCLI

    launch = choose_launch(backend, gpus, H100 if gpus else 0, weights, ray=ray)
    tasks = TasksSpec(names=["mr_choice"], folder=TASKS, backend=backend)
    model = HarnessModel(Path("/m"), "this release", HARNESS_DIR)
    command = harness_command(
        model, tasks, "bfloat16", launch, Path("/out"), trust_remote_code=False
    )
    assert command[:3] == [sys.executable, "-m", "lm_eval"]
    args = HarnessCLI()._parser.parse_args(command[3:])
    assert args.model == backend
    assert args.model_args == {"pretrained": "/m", "dtype": "bfloat16", **extra}
    assert args.device == ("cpu" if gpus == 0 else "cuda")


def test_a_lora_input_runs_as_the_base_with_lm_eval_s_peft_argument():
    """A merge recipe's LoRA input: lm-eval loads the base and applies the adapter with
    PeftModel itself (its ``peft=``), as the input's users load it."""
    from lm_eval._cli.harness import HarnessCLI

    model = HarnessModel(Path("/base"), "a", "lm-eval-inputs/1-a", peft=Path("/loras/a"))
    tasks = TasksSpec(names=["mr_choice"], folder=TASKS)
    launch = choose_launch("hf", 0, 0, GiB)
    command = harness_command(
        model, tasks, "float32", launch, Path("/out"), trust_remote_code=False
    )
    args = HarnessCLI()._parser.parse_args(command[3:])
    assert args.model_args == {"pretrained": "/base", "peft": "/loras/a", "dtype": "float32"}


def test_progress_counts_each_task_once_however_many_ranks_print_it():
    """Under accelerate's launcher each rank logs "Building contexts for TASK on rank N"
    (lm-eval 0.4.13, api/task.py): a task is one step, when its first rank builds it;
    then rank 0's tqdm bar of each kind of request (lines as lm-eval wrote them on SmolLM2,
    ranks added)."""
    info = "2026-12-06:11:53:40 INFO    "
    log = [
        f"{info} [api.task:312] Building contexts for mr_choice on rank 1...",
        f"{info} [api.task:312] Building contexts for mr_choice on rank 0...",
        "100%|██████████| 6/6 [00:00<00:00, 1234.56it/s]",
        f"{info} [api.task:312] Building contexts for mr_generate on rank 0...",
        f"{info} [api.task:312] Building contexts for mr_choice on rank 2...",
        f"{info} [api.task:312] Building contexts for mr_generate on rank 1...",
        f"{info} [api.task:312] Building contexts for mr_perplexity on rank 1...",
        f"{info} [evaluator:589] Running loglikelihood requests",
        "Running loglikelihood requests:   0%|          | 0/18 [00:00<?, ?it/s]",
        "Running loglikelihood requests:  39%|███▉      | 7/18 [00:01<00:02,  4.21it/s]",
        "Running loglikelihood requests: 100%|██████████| 18/18 [00:03<00:00,  5.80it/s]",
        "Running generate_until requests:  17%|█▋        | 1/6 [00:00<00:03,  1.50it/s]",
    ]
    steps = HarnessLog(["mr_group", "mr_perplexity"])
    assert [step for line in log if (step := steps.read(line))] == [
        Step(0, 2, "tasks", "mr_choice"),
        Step(1, 2, "tasks", "mr_generate"),
        Step(2, 3, "tasks", "mr_perplexity"),  # a group's tasks: more than were named
        Step(0, 18, "requests", "loglikelihood"),
        Step(7, 18, "requests", "loglikelihood"),
        Step(18, 18, "requests", "loglikelihood"),
        Step(1, 6, "requests", "generate_until"),
    ]
    assert steps.started == ["mr_choice", "mr_generate", "mr_perplexity"]
