"""Benchmark: eval.contamination's check, 1M training texts against 20k test documents.

    python -m bench.contamination [--segments 1000000] [--documents 20000] [--naive 20000]

Synthetic Catalan-shaped text made here (``tests.support.catalan_text.planted_corpus``, which
the contamination tests use too): the training data as a JSONL file of chat records, the
test documents as question/answer texts, some of them planted in the training data
(exact copies, copies with one word changed, inside a longer training text). Each
contender runs in a child process (its peak RSS is its own):

- ours: ``release.evaluate.contamination`` from the JSONL file to the per-document
  verdicts, every method (exact, substring, word 13-grams, character 50- and 30-grams);
- naive: Python sets of strings (the normalized texts, every word 13-gram and character
  n-gram as a str), the way a first script would do it, on the first ``--naive`` training
  texts only (on all of them it would need tens of GB), its time scaled to the whole.

Target (issue 30): ours under a minute on a 2-core machine. Wall time on a shared machine
says little: the CPU seconds each contender used are printed beside it. Not asserted in
tests: timing depends on the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELF = [sys.executable, "-m", __spec__.name]
"""This module again, as the child process it runs a contender in."""

PLANTED = 300
"""Test documents planted per kind (exact, one word changed, inside a training text)."""


def generate(folder: Path, segments: int, documents: int) -> None:
    from tests.support.catalan_text import planted_corpus, sentences

    tests, training = planted_corpus(
        documents, segments, PLANTED, 1, question_words=(12, 30), answer_words=(3, 12)
    )
    answers = sentences(segments, seed=4, words=(4, 16))
    with (folder / "train.jsonl").open("w", encoding="utf-8") as out:
        for user, assistant in zip(training, answers, strict=True):
            messages = [
                {"role": "user", "content": user},
                {"role": "assistant", "content": assistant},
            ]
            out.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    (folder / "tests.json").write_text(json.dumps(tests, ensure_ascii=False))


class _Quiet:
    stage = "contamination"

    def log(self, message, level="info"):
        return None

    def progress(self, done, total, unit, message=""):
        return None

    def check_cancelled(self):
        return None


def run_ours(folder: Path) -> dict:
    from release.evaluate.contamination.check import TaskDocument, check_contamination
    from release.evaluate.contamination.methods import methods_of
    from release.evaluate.contamination.training import read_segments
    from release.spec.schema import ContaminationSpec

    spec = ContaminationSpec(training_data=[{"path": folder / "train.jsonl"}])
    methods = methods_of(spec)
    texts = json.loads((folder / "tests.json").read_text())
    documents = [TaskDocument("bench", i, text) for i, text in enumerate(texts)]
    started, cpu = time.perf_counter(), time.process_time()
    run = check_contamination(
        spec, methods, documents, read_segments(spec.training_data), folder / "spill", _Quiet()
    )
    try:
        while True:
            next(run)
    except StopIteration as done:
        result = done.value
    seconds = time.perf_counter() - started
    found = {key: int(m.flagged.sum()) for key, m in result.matches.items()}
    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "worker_cpu_seconds": _children_cpu(),
        "segments": result.segments,
        "characters": result.characters,
        "index_hashes": result.index_hashes,
        "found": found,
    }


def _children_cpu() -> float:
    """CPU seconds of the worker processes (reaped when the check's pool closed)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_naive(folder: Path, limit: int) -> dict:
    from release.evaluate.contamination.normalize import (
        janitor_test_form,
        janitor_training_form,
        normal_form,
    )

    texts = json.loads((folder / "tests.json").read_text())
    started, cpu = time.perf_counter(), time.process_time()
    whole: set[str] = set()
    grams: dict[int, set[str]] = {50: set(), 30: set()}
    words13: set[str] = set()
    read = 0
    with (folder / "train.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if read == limit:
                break
            read += 1
            raw = "\n".join(m["content"] for m in json.loads(line)["messages"])
            text = normal_form(raw)
            whole.add(text)
            for n, held in grams.items():
                held.update(text[i : i + n] for i in range(len(text) - n + 1))
            words = janitor_training_form(raw).split(" ")
            words13.update(" ".join(words[i : i + 13]) for i in range(len(words) - 12))
    found = {"exact": 0, "word_13grams": 0, "char_50grams": 0, "char_30grams": 0}
    for raw in texts:
        text = normal_form(raw)
        found["exact"] += text in whole
        words = janitor_test_form(raw).split(" ")
        found["word_13grams"] += any(
            " ".join(words[i : i + 13]) in words13 for i in range(len(words) - 12)
        )
        for n, held in grams.items():
            mine = [text[i : i + n] for i in range(len(text) - n + 1)]
            share = sum(gram in held for gram in mine) / max(len(mine), 1)
            found[f"char_{n}grams"] += bool(mine) and share >= 0.3
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "segments": read, "found": found}


def child(contender: str, folder: Path, naive: int) -> dict:
    command = [*SELF, "--contender", contender, "--naive", str(naive)]
    out = subprocess.run([*command, str(folder)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument(
        "--naive", type=int, default=20_000, help="training texts the naive reads (0: skip it)"
    )
    parser.add_argument("--contender", choices=["ours", "naive"])
    parser.add_argument("folder", nargs="?", type=Path)
    args = parser.parse_args()

    if args.contender:
        if args.contender == "ours":
            report = run_ours(args.folder)
        else:
            report = run_naive(args.folder, args.naive)
        report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(report))
        return

    with tempfile.TemporaryDirectory(prefix="contamination-bench-") as name:
        folder = Path(name)
        started = time.perf_counter()
        generate(folder, args.segments, args.documents)
        size = (folder / "train.jsonl").stat().st_size
        print(
            f"data: {args.segments:,} training texts ({size / 1e6:.0f} MB JSONL), "
            f"{args.documents:,} test documents, {PLANTED} planted of each kind "
            f"(made in {time.perf_counter() - started:.0f} s)"
        )
        ours = child("ours", folder, args.naive)
        naive = child("naive", folder, args.naive) if args.naive else None
    print(
        f"ours:  {ours['seconds']:6.1f} s ({ours['cpu_seconds']:.1f} s of CPU reading, "
        f"{ours['worker_cpu_seconds']:.1f} s in the workers) for "
        f"{ours['segments']:,} texts "
        f"({ours['characters'] / 1e6:.0f} M characters, {ours['index_hashes'] / 1e6:.0f} M "
        f"n-gram hashes), peak RSS {ours['peak_rss_mb']:.0f} MB; found {ours['found']}"
    )
    if naive is None:
        return
    scale = ours["segments"] / naive["segments"]
    print(
        f"naive: {naive['seconds']:6.1f} s ({naive['cpu_seconds']:.1f} s of CPU) for "
        f"{naive['segments']:,} texts, peak RSS "
        f"{naive['peak_rss_mb']:.0f} MB; scaled to {ours['segments']:,}: "
        f"~{naive['seconds'] * scale:.0f} s, ~{naive['peak_rss_mb'] * scale / 1024:.0f} GB"
    )
    print(f"ours is ~{naive['seconds'] * scale / ours['seconds']:.0f}x faster (target: < 60 s)")


if __name__ == "__main__":
    main()
