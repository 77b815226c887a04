"""The regression gate: this release's stored eval scores against the last release's.

Scores are matched on (task, metric, filter). A score is compared only with a score
measured the same way: a different n-shot or task version is flagged, never compared
silently. The gate fails when one task drops by more than ``max_task_drop`` (relative)
or the average of the compared scores by more than ``max_average_drop``; smaller drops
are warnings. Metrics where lower is better (perplexity, word error rate) count a rise
as a drop.

The same rule judges a GGUF file's scores on the release's tasks (eval.tasks.gguf)
against the merged model's: a file that drops by more than ``gguf.max_task_drop`` on a
task is refused (``judge_quant``).

Pure data in, data out: no models, no torch; the card and the Action summary show it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cards.records import DEFAULT_FILTER, EvalRecord, score_label, scores_as_json
from release.core.errors import InputError, Refused, WorkError
from release.evaluate.facts import EvaluateFacts, GateFacts
from release.evaluate.history import is_manifest, previous_release, released_scores
from release.evaluate.scores import read_scores, this_release
from release.spec.schema import EvalSpec


@dataclass(frozen=True)
class Comparison:
    task: str
    metric: str
    previous: float
    current: float
    drop: float  # relative; positive means worse
    filter: str = DEFAULT_FILTER
    n_shot: int | None = None

    @property
    def label(self) -> str:
        return score_label(self.task, self.metric, self.filter)

    def describe(self) -> str:
        return f"{self.label} {_pct(self.previous)} → {_pct(self.current)} (-{self.drop:.0%})"


@dataclass
class GateVerdict:
    passed: bool = True
    compared: list[Comparison] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    average_previous: float | None = None
    average_current: float | None = None

    def to_facts(self) -> dict:
        return asdict(self)


def _pct(value: float) -> str:
    return f"{value:.4g}"


def _lower_is_better(record: EvalRecord) -> bool:
    if record.higher_is_better is not None:
        return not record.higher_is_better
    return any(word in record.metric.lower() for word in ("perplexity", "ppl", "wer", "loss"))


def _relative_drop(previous: EvalRecord, current: EvalRecord) -> float:
    if previous.value == 0:
        return 0.0
    change = (previous.value - current.value) / abs(previous.value)
    return -change if _lower_is_better(previous) else change


def compare(
    current: Iterable[EvalRecord],
    previous: Iterable[EvalRecord],
    *,
    max_task_drop: float,
    max_average_drop: float,
) -> GateVerdict:
    verdict = GateVerdict()
    before = {record.key: record for record in previous}
    higher_better: list[tuple[float, float]] = []
    for record in current:
        old = before.get(record.key)
        if old is None:
            continue
        label = record.label
        if old.n_shot != record.n_shot:
            verdict.flagged.append(
                f"{label}: n-shot differs ({old.n_shot} before, {record.n_shot} now); not compared"
            )
            continue
        if old.task_version != record.task_version:
            verdict.flagged.append(
                f"{label}: task version differs ({old.task_version} before, "
                f"{record.task_version} now); not compared"
            )
            continue
        comparison = Comparison(
            record.task,
            record.metric,
            old.value,
            record.value,
            _relative_drop(old, record),
            record.filter,
            record.n_shot,
        )
        verdict.compared.append(comparison)
        if not _lower_is_better(record):
            higher_better.append((old.value, record.value))
        if comparison.drop > max_task_drop:
            verdict.failures.append(comparison.describe())
        elif comparison.drop > 0.01:
            verdict.warnings.append(comparison.describe())
    if higher_better:
        verdict.average_previous = sum(old for old, _ in higher_better) / len(higher_better)
        verdict.average_current = sum(new for _, new in higher_better) / len(higher_better)
        if verdict.average_previous > 0:
            drop = (verdict.average_previous - verdict.average_current) / verdict.average_previous
            if drop > max_average_drop:
                verdict.failures.insert(
                    0,
                    f"average {_pct(verdict.average_previous)} → "
                    f"{_pct(verdict.average_current)} (-{drop:.0%})",
                )
    verdict.passed = not verdict.failures
    return verdict


def judge_quant(
    file: str, quant: str, merged: list[EvalRecord], on_file: list[EvalRecord], limit: float
) -> list[Comparison]:
    """Each of a GGUF file's scores against the merged model's on the same task (its
    type ``quant``); raises WorkError naming the worst when it drops by more than
    ``limit`` (gguf.max_task_drop), as a file that fails a check is refused."""
    compared = compare(on_file, merged, max_task_drop=math.inf, max_average_drop=math.inf)
    worst = max(compared.compared, key=lambda c: c.drop, default=None)
    if worst is not None and worst.drop > limit:
        raise WorkError(
            f"{file}: {worst.label} is {_pct(worst.current)} on the file against the merged "
            f"model's {_pct(worst.previous)} (-{worst.drop:.0%}), over gguf.max_task_drop "
            f"{limit}",
            hint=f"drop {quant} from gguf.types and eval.tasks.gguf, or raise "
            "gguf.max_task_drop in the spec",
        )
    return compared.compared


def worst_first(verdict: GateVerdict, count: int = 3) -> list[str]:
    worst = sorted(verdict.compared, key=lambda c: c.drop, reverse=True)[:count]
    return [c.describe() for c in worst if c.drop > 0]


def previous_records(paths: Iterable[Path]) -> list[EvalRecord]:
    """The last release's scores: from its manifest.json (the stored results its evaluate
    stage recorded; a version the gate held back stands for the release before it) or
    from results files directly."""
    records: list[EvalRecord] = []
    files: list[Path] = []
    for path in paths:
        if is_manifest(path) and path.is_file():
            records += released_scores(path)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file", hint="fix eval.previous in release.yaml")
    return records + read_scores(files, None)


def previous_scores(paths: Iterable[Path]) -> list[list[dict]]:
    """What the gate reads of each previous manifest among ``paths`` (the scores it
    compares against), as the evaluate stage is keyed on it: pushing the last release
    rewrites its manifest (the push's facts), which must not make this release's
    evaluate stale. Results files among ``paths`` are keyed by their bytes instead."""
    return [scores_as_json(released_scores(p)) for p in paths if is_manifest(p) and p.is_file()]


def gate_stored_results(
    spec: EvalSpec,
    spec_dir: Path | None,
    workspace: Path,
    produced: Iterable[EvalRecord] = (),
) -> EvaluateFacts:
    """The gate on this release's scores (the spec's stored results and those
    ``produced`` by its lm-eval run, ``release.evaluate.scores``) against the last
    release's; raises ``Refused`` with the worst drops when it fails. Returns the scores,
    the verdict and the previous manifests (relative to ``workspace``, where this
    release's manifest lies) as facts."""
    current = this_release(read_scores(spec.results, spec_dir), produced)
    previous = previous_records(spec.previous)
    verdict = compare(
        current,
        previous,
        max_task_drop=spec.max_task_drop,
        max_average_drop=spec.max_average_drop,
    )
    facts = EvaluateFacts(
        results=current,
        gate=GateFacts.model_validate(verdict.to_facts()),
        previous=[previous_release(path, workspace) for path in spec.previous if is_manifest(path)],
    )
    if not verdict.passed:
        worst = "; ".join(dict.fromkeys([*verdict.failures, *worst_first(verdict)]))
        raise Refused(
            f"regression gate failed against the last release: {worst}",
            facts=facts.as_json(),
            hint="find out what broke (a wrong base? another eval setup?) before releasing",
        )
    return facts
