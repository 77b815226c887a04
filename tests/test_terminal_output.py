"""What a user sees while a release runs is ours: the libraries' chatter is held.

transformers draws a "Loading weights" bar for each model it loads and warns of its own
deprecations (FutureWarning), PEFT warns when it cannot find a base's config file; none
of it may land between the stages' lines. The CLI runs here as a user runs it, in a
process of its own with its stdout and stderr read whole (pytest's capture would hide
what a terminal shows), and every line must be one the CLI prints itself.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.support.cli_process import run_cli

# The shapes of the CLI's own lines (release.report.console without a terminal, and the
# demo command's): a header, a stage starting, a stage's log line, skipped, done, failed,
# the end; the demo's training steps, its scores and the files it wrote.
OUR_LINES = re.compile(
    r"^(release \S+ v\S+ → |▶ |  \S|○ |✔ |✘ |done: |training the demo LoRA |"
    r"held-out unit conversions|wrote |next: )"
)
LIBRARY_MARKERS = ("Loading weights", "Warning", "it/s]", "warnings.warn", "Could not find")


def assert_only_ours(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == "", f"stderr is for errors; it got:\n{done.stderr}"
    foreign = [line for line in done.stdout.splitlines() if not OUR_LINES.match(line)]
    assert foreign == [], "\n".join(foreign)
    assert not [m for m in LIBRARY_MARKERS if m in done.stdout], done.stdout


def test_intake_merge_and_eval_print_only_our_lines(tmp_path, tiny_llama_dir, tiny_adapter):
    """The evaluate stage loads three models and generates: no bar, no warning shows."""
    spec = {
        "name": "tiny-chat",
        "version": "1.0.0",
        "base": {"repo_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "path": str(tiny_llama_dir)},
        "adapter": {"path": str(tiny_adapter)},
        # a random model: the checks run in full, their limits cannot be a trained one's
        "eval": {"max_perplexity_ratio": 100.0},
        "gguf": {"types": []},
        "card": {"summary": "A tiny test model.", "license": "apache-2.0", "language": ["en"]},
    }
    spec_path = tmp_path / "release.yaml"
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    stages = ("adapter", "merge", "evaluate")
    done = run_cli("run", str(spec_path), *(f"--stage={s}" for s in stages))
    assert_only_ours(done)
    assert [line[2:].split()[0] for line in done.stdout.splitlines() if line[:1] == "✔"] == list(
        stages
    )


@pytest.mark.slow
def test_the_demo_prints_only_our_lines(tmp_path, smollm2_base_dir):
    """`model-release demo`: the LoRA's training (the base loaded, the adapter saved under
    a Hub id PEFT cannot find) and its scoring (generation) keep to our lines."""
    done = run_cli("demo", str(tmp_path / "demo"), "--steps=2", "--no-run")
    assert_only_ours(done)
    assert "  step   2  loss " in done.stdout
    assert (tmp_path / "demo" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_the_demo_release_prints_only_our_lines(demo_release_run):
    """`model-release run` of the demo, every stage on SmolLM2 (the session's release)."""
    assert_only_ours(demo_release_run.output)
    stages = ("adapter", "merge", "evaluate", "gguf", "card")
    assert all(f"✔ {stage} " in demo_release_run.output.stdout for stage in stages)


def test_without_a_terminal_progress_is_a_line_every_ten_seconds(capsys):
    """A CI log has no bar: a working stage prints where it is at most every 10 s, and
    only when 10 s have passed since its last line (the clock is the test's)."""
    from release.core.events import Log, Progress, StageStarted
    from release.report.console import PLAIN_PROGRESS_EVERY_S, EventPrinter, Output

    now = [100.0]
    printer = EventPrinter(Output(), clock=lambda: now[0])
    events = [
        (0.0, StageStarted("merge", "merging")),
        (4.0, Progress("merge", 1e9, 8e9, "bytes", "model.layers.0.q_proj.weight")),
        (10.5, Progress("merge", 2e9, 8e9, "bytes", "model.layers.3.q_proj.weight")),
        (12.0, Progress("merge", 3e9, 8e9, "bytes", "model.layers.5.q_proj.weight")),
        (21.0, Log("merge", "halfway")),
        (25.0, Progress("merge", 5e9, 8e9, "bytes", "")),
        (31.5, Progress("evaluate", 3, 12, "windows", "perplexity: merged")),
    ]
    with printer:
        for at, event in events:
            now[0] = 100.0 + at
            printer.show(event)
    lines = capsys.readouterr().out.splitlines()
    assert PLAIN_PROGRESS_EVERY_S == 10.0
    assert lines == [
        "▶ merging",
        "  … 2.0 GB / 8.0 GB (25%): model.layers.3.q_proj.weight",
        "  halfway",
        "  … 3 / 12 windows (25%): perplexity: merged",
    ]
    assert all(OUR_LINES.match(line) for line in lines)
