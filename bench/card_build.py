"""Benchmark: `card build` on stored eval results, and proof it never imports torch.

    python -m bench.card_build [--runs 5]

Two inputs: an lm-eval 0.4.x results file with 100 scores (50 tasks x acc, acc_norm)
written to a temp dir, and the file lm-evaluation-harness itself wrote for the cards
corpus (tests/cards_corpus/lmeval: local-data tasks, a group, two filters, a
perplexity task), built with the base model's card cited. For each, it times
  - the whole command in a fresh interpreter (`python -m cards build ...`), imports
    included: what a user waits for;
  - load + render in-process, after a warm-up: the card work alone.
Target (issues 6 and 17): under 0.5 s for the command. Not asserted in tests: timing
depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tests" / "cards_samples" / "demo"
HARNESS_RESULTS = sorted((ROOT / "tests" / "cards_corpus" / "lmeval").glob("results_*.json"))
BASE_CARD = ROOT / "tests" / "cards_corpus" / "cards" / "leaderboard_v1_submission.md"


def write_results(folder: Path, tasks: int = 50) -> Path:
    names = [f"mmlu_subject_{i:02d}" for i in range(tasks)]
    data = {
        "results": {
            name: {
                "alias": name,
                "acc,none": 0.25 + i / 400,
                "acc_stderr,none": 0.04,
                "acc_norm,none": 0.26 + i / 400,
                "acc_norm_stderr,none": 0.041,
            }
            for i, name in enumerate(names)
        },
        "configs": {
            name: {"dataset_path": "cais/mmlu", "dataset_name": name[5:], "test_split": "test"}
            for name in names
        },
        "versions": dict.fromkeys(names, 1.0),
        "n-shot": dict.fromkeys(names, 5),
        "higher_is_better": {name: {"acc": True, "acc_norm": True} for name in names},
        "config": {"model_args": "pretrained=./merged", "model_sha": "0" * 40},
        "lm_eval_version": "0.4.9",
        "date": 1772359200.0,
    }
    path = folder / "results_bench.json"
    path.write_text(json.dumps(data))
    return path


def timed(command: list[str], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (user + sys) seconds of each run of ``command``."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return walls, cpus


def measure(name: str, card_yaml: Path, results: list[Path], out: Path, runs: int) -> None:
    command = [sys.executable, "-m", "cards", "build", "--metadata", str(card_yaml)]
    command += ["--facts", str(DEMO / "facts.json"), "--output", str(out)]
    for path in results:
        command += ["--results", str(path)]
    walls, cpus = timed(command, runs)

    from cards.render import render_model_card
    from cards.spec import load_context

    def build() -> str:
        ctx = load_context(card_yaml, results, [], DEMO / "facts.json")
        return render_model_card(ctx)

    build()  # warm-up: template compilation, vocabularies, lazy imports
    inner = []
    for _ in range(runs):
        start = time.perf_counter()
        text = build()
        inner.append(time.perf_counter() - start)
    scores = text.count("\n    - type: ")
    print(f"{name}: {scores} scores in model-index")
    print(
        f"  `python -m cards build` (fresh process), {runs} runs: wall min {min(walls):.3f} s, "
        f"median {statistics.median(walls):.3f} s; CPU median {statistics.median(cpus):.3f} s"
    )
    print(f"  load + render in-process, median of {runs}: {statistics.median(inner) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        synthetic = write_results(folder)
        measure("100 synthetic scores", DEMO / "card.yaml", [synthetic], folder / "a.md", runs)
        spec = (DEMO / "card.yaml").read_text() + f"base_model_card: {BASE_CARD}\n"
        (folder / "card.yaml").write_text(spec)
        measure(
            "harness-written corpus", folder / "card.yaml", HARNESS_RESULTS, folder / "b.md", runs
        )
        floor, _ = timed([sys.executable, "-c", "pass"], runs)
        heavy = sorted({"torch", "transformers", "peft"} & set(sys.modules))
    print(f"bare `python -c pass` on this machine now: wall min {min(floor):.3f} s (the floor)")
    print(f"heavy modules imported: {heavy or 'none'}")


if __name__ == "__main__":
    main()
