"""The gate's comparison as people read it: a Markdown table of every compared score
with its change and filter, the scores measured differently, and the verdict.

``model-release compare``, the release notes and the wizard's eval step show the same
table; the verdict itself is ``release.evaluate.gate.compare``'s. The GGUF files' scores
against the merged model's (eval.tasks.gguf, judged by the same rule) are shown as
``quant_rows`` says, by the CLI and the wizard's GGUF step.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from cards.records import EvalRecord, metric_label
from release.core.errors import InputError
from release.core.manifest import Manifest
from release.evaluate.facts import ComparisonFacts
from release.evaluate.gate import Comparison, GateVerdict, compare, worst_first
from release.evaluate.history import is_manifest
from release.evaluate.scores import read_scores, release_scores
from release.gguf.facts import QuantScoresFacts
from release.spec.schema import EvalSpec


class DropLimits(Protocol):
    """The gate's limits as the verdict states them: the spec's eval section, or the
    push's settings (``release.hub.settings.PushGate``)."""

    @property
    def max_task_drop(self) -> float: ...

    @property
    def max_average_drop(self) -> float: ...


def stored_scores(path: Path) -> list[EvalRecord]:
    """The scores in a manifest (what its evaluate stage recorded) or a results file."""
    if not path.is_file():
        raise InputError(f"{path}: no such file", hint="give a manifest.json or a results file")
    if is_manifest(path):
        return release_scores(Manifest.load(path)).records
    return read_scores([path], None)


def compare_files(old: Path, new: Path, thresholds: EvalSpec | None = None) -> GateVerdict:
    """The gate on two sets of stored results, with the spec's default thresholds."""
    limits = thresholds or EvalSpec()
    before = stored_scores(old)
    return compare(
        stored_scores(new),
        before,
        max_task_drop=limits.max_task_drop,
        max_average_drop=limits.max_average_drop,
    )


def change(drop: float) -> str:
    """A gate's relative drop as a change, signed so that + is better (a lower
    perplexity too)."""
    return f"{0.0 - drop:+.1%}"  # 0.0 - 0.0 is 0.0, where -0.0 would show as "-0.0%"


def score_rows(compared: Iterable[Comparison | ComparisonFacts]) -> list[list[str]]:
    """Task, metric, filter, n-shot, before, now, change: one row per compared score,
    worst first (the compare command, the notes and the wizard show these rows)."""
    return [
        [
            c.task,
            c.metric,
            c.filter,
            "" if c.n_shot is None else str(c.n_shot),
            f"{c.previous:.4g}",
            f"{c.current:.4g}",
            change(c.drop),
        ]
        for c in sorted(compared, key=lambda c: c.drop, reverse=True)
    ]


def quant_rows(runs: list[QuantScoresFacts]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the GGUF files' scores: per task and metric the merged
    model's score, then each file's with its change from it (a column per type)."""
    header = ["task", "metric", "merged", *(run.type.upper() for run in runs)]
    rows: dict[tuple[str, str, str], list[str]] = {}
    for column, run in enumerate(runs, start=3):
        for c in run.compared:
            row = rows.setdefault(
                (c.task, c.metric, c.filter),
                [c.task, metric_label(c.metric, c.filter), f"{c.merged:.4g}", *[""] * len(runs)],
            )
            row[column] = f"{c.value:.4g} ({change(c.drop)})"
    return header, list(rows.values())


def quant_note(runs: list[QuantScoresFacts]) -> str:
    """What ``quant_rows``' changes are, and the limit the files met."""
    limit = runs[0].max_task_drop  # one spec's: the same for every file
    return f"change from the merged model's score, + is better; gguf.max_task_drop {limit:.0%}"


def score_table(verdict: GateVerdict, old: str, new: str) -> list[str]:
    """Markdown lines: one row per compared score, worst first."""
    lines = [
        f"| Task | Metric | Filter | n-shot | {old} | {new} | Change |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    return lines + [f"| {' | '.join(row)} |" for row in score_rows(verdict.compared)]


def verdict_lines(verdict: GateVerdict, limits: DropLimits) -> list[str]:
    """The scores not compared, and the gate's verdict with its thresholds."""
    lines = [f"- not compared: {line}" for line in verdict.flagged]
    rule = (
        f"a score may drop {limits.max_task_drop:.0%}, "
        f"the average of the compared scores {limits.max_average_drop:.0%}"
    )
    if verdict.passed:
        lines.append(f"- gate: passed ({rule})")
    else:
        worst = dict.fromkeys([*verdict.failures, *worst_first(verdict)])
        lines.append(f"- gate: FAILED ({rule}): {'; '.join(worst)}")
    return lines


def comparison_markdown(verdict: GateVerdict, old: str, new: str, limits: DropLimits) -> str:
    if not verdict.compared:
        table = ["No score was measured the same way in both."]
    else:
        table = score_table(verdict, old, new)
    return "\n".join([*table, "", *verdict_lines(verdict, limits)]) + "\n"
