"""GitHub Actions: a job summary, annotations and step outputs for a release run.

When ``GITHUB_ACTIONS=true`` (set by every GitHub runner), ``job_report`` watches the
runner's events and, when the command ends, whether it succeeded or not:

- appends a Markdown summary to ``$GITHUB_STEP_SUMMARY``: each stage with its timing,
  the stages' warnings, the eval table and the gate's verdict, the card lint results
  and what was pushed;
- prints workflow commands (annotations): ``::error file=…,line=N::`` or
  ``::warning …`` for each card lint problem and ``::error`` for a failed stage, so they
  show on the run's page and, for files in the repository, next to the line;
- folds each stage's log lines into a log group (``::group::``) that closes as the stage
  ends, so the printer's line with the stage's time shows under the folded group;
- writes step outputs to ``$GITHUB_OUTPUT``: ``model-url``, ``gguf-url``,
  ``adapter-url``, ``commit`` (of the model repo), ``card-lint``
  (``passed``, ``warnings`` or ``errors``) and ``notes`` (the release notes, Markdown,
  for a GitHub release body), which ``action.yml`` passes on.

Outside GitHub Actions it does nothing. Every string goes through ``redact``, so a
token in an error message reaches neither the summary nor the log. No torch here: the
report is built from events and the manifest's facts.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from cards.baseline import base_scores
from release.core.errors import InputError, ReleaseError
from release.core.events import (
    Event,
    Log,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from release.core.facts import StageFacts
from release.core.manifest import MANIFEST_NAME, Manifest
from release.core.redact import redact
from release.evaluate.contamination.facts import ContaminationFacts
from release.evaluate.facts import EvaluateFacts
from release.hub.facts import PushFacts
from release.report.card_facts import CardFacts
from release.report.compare import change
from release.report.notes import manifest_notes
from release.spec.schema import ReleaseSpec

if TYPE_CHECKING:
    from cards.lint import Problem

Record = TypeVar("Record", bound=StageFacts)

LintStatus = Literal["passed", "warnings", "errors"]


def in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def check_tag(spec: ReleaseSpec, tag: str, spec_path: Path) -> None:
    """Refuse a release whose version is not the one the pushed tag names.

    ``tag`` is e.g. ``$GITHUB_REF_NAME``: ``v1.2.0`` or ``1.2.0`` match version 1.2.0.
    """
    if tag.removeprefix("v") != spec.version:
        raise InputError(
            f"{spec_path}: version is {spec.version} but the tag is {tag}",
            hint=f"set `version: {tag.removeprefix('v')}` in release.yaml and tag again, "
            f"or push the tag {spec.tag}",
        )


# -- workflow commands ------------------------------------------------------------------
# Escaping as in actions/toolkit's command.ts: data escapes %, CR and LF; property values
# also escape ':' and ',', which separate the properties.


def _data(text: str) -> str:
    return redact(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def command(
    kind: Literal["error", "warning", "notice"],
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    title: str | None = None,
) -> str:
    """One workflow command line, e.g. ``::error file=README.md,line=3::message``."""
    props = {"file": file, "line": str(line) if line else None, "title": title}
    shown = ",".join(f"{key}={_property(value)}" for key, value in props.items() if value)
    return f"::{kind}{' ' + shown if shown else ''}::{_data(message)}"


def annotate(problems: Iterable[Problem]) -> None:
    """Print an annotation per card lint problem, on its file and line (to stdout, where
    the runner reads workflow commands)."""
    for p in problems:
        print(command(p.severity, p.message, file=p.path, line=p.line, title="model card"))


def lint_status(problems: Iterable[Problem]) -> LintStatus:
    severities = {problem.severity for problem in problems}
    return "errors" if "error" in severities else "warnings" if severities else "passed"


def shown_path(path: Path) -> str:
    """``path`` relative to the checkout, so GitHub can put the annotation on the file."""
    root = Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd()).absolute()
    path = path.absolute()
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def set_outputs(outputs: dict[str, str]) -> None:
    """Append step outputs to ``$GITHUB_OUTPUT`` (a heredoc each, as actions/toolkit)."""
    target = os.environ.get("GITHUB_OUTPUT")
    if not target or not outputs:
        return
    with open(target, "a", encoding="utf-8") as handle:
        for name, value in outputs.items():
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            handle.write(f"{name}<<{delimiter}\n{redact(value)}\n{delimiter}\n")


def append_summary(markdown: str) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(redact(markdown))


# -- the report --------------------------------------------------------------------------


@dataclass
class StageRow:
    stage: str
    result: str
    seconds: float | None = None


@dataclass
class CardLint:
    file: str
    problems: list[Problem]


@dataclass
class JobReport:
    """What one command did, gathered from its events; see the module docstring."""

    spec: ReleaseSpec
    rows: list[StageRow] = field(default_factory=list)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Facts of the stages that ran in this command, by stage, as their events carry them."""
    warnings: list[str] = field(default_factory=list)

    def show(self, event: Event) -> None:
        """Take ``event`` in; called before the console prints it, so a stage's group
        opens above its first line and closes above its "done in" line."""
        match event:
            case StageStarted(stage, title):
                print(f"::group::{_data(title)} ({stage})", flush=True)
            case StageFinished(stage, seconds, facts):
                print("::endgroup::", flush=True)
                self.rows.append(StageRow(stage, "✅ done", seconds))
                self.facts[stage] = facts
            case StageSkipped(stage, reason):
                self.rows.append(StageRow(stage, f"⏭️ skipped: {reason}"))
            case StageFailed(stage, error):
                print("::endgroup::", flush=True)
                self.rows.append(StageRow(stage, f"❌ failed: {error}"))
                print(command("error", str(error), title=f"{stage} failed"), flush=True)
            case Log(stage, message, "warning"):
                self.warnings.append(f"{stage}: {message}")

    def stage_facts(self, record: type[Record]) -> Record | None:
        """This command's facts of ``record``'s stage, else those the manifest holds."""
        if record.stage in self.facts:
            return record.model_validate(self.facts[record.stage])
        return record.of(_load_manifest(self.spec.workspace / MANIFEST_NAME))

    def pushed(self) -> PushFacts:
        """What this command pushed (nothing when the push did not run in it)."""
        return PushFacts.model_validate(self.facts.get(PushFacts.stage, {}))

    def card_lints(self) -> list[CardLint]:
        """Lint every card the card stage recorded (README.md files)."""
        from cards.lint import lint_card

        manifest = _load_manifest(self.spec.workspace / MANIFEST_NAME)
        record = manifest.stages.get(CardFacts.stage) if manifest else None
        lints = []
        for output in record.outputs if record else []:
            path = self.spec.workspace / output.path
            if path.name == "README.md" and path.is_file():
                file = shown_path(path)
                lints.append(CardLint(file, lint_card(path.read_text(encoding="utf-8"), file)))
        return lints

    def notes(self) -> str:
        """The release notes, once the evaluate stage has measured (or been refused)."""
        manifest = _load_manifest(self.spec.workspace / MANIFEST_NAME)
        if manifest is None:
            return ""
        try:
            return manifest_notes(manifest, self.spec.workspace, self.spec.eval)
        except ReleaseError:  # a previous manifest gone bad: the run's report still goes out
            return ""

    def finish(self) -> None:
        """Annotations, the summary and the step outputs."""
        lints = self.card_lints()
        for lint in lints:
            annotate(lint.problems)
        notes = self.notes()
        append_summary(self.markdown(lints) + (f"\n{notes}" if notes else ""))
        set_outputs(self.outputs(lints) | ({"notes": notes.rstrip()} if notes else {}))

    def outputs(self, lints: list[CardLint]) -> dict[str, str]:
        outputs: dict[str, str] = {}
        for repo in self.pushed().repos:
            outputs[f"{repo.role}-url"] = repo.url
            if repo.role == "model":
                outputs["commit"] = repo.commit
        if lints:
            outputs["card-lint"] = lint_status(p for lint in lints for p in lint.problems)
        return outputs

    def markdown(self, lints: list[CardLint]) -> str:
        parts = [
            f"## model-release: {self.spec.name} {self.spec.tag}\n",
            _table(
                ["Stage", "Result", "Time"],
                [[row.stage, row.result, _seconds(row.seconds)] for row in self.rows],
            ),
            "".join(f"- ⚠️ {_cell(warning)}\n" for warning in self.warnings),
            _evaluation(self.stage_facts(EvaluateFacts)),
            _contamination(self.stage_facts(ContaminationFacts)),
            _card_section(lints),
            _push_section(self.pushed()),
        ]
        return "\n".join(part for part in parts if part) + "\n"


@contextlib.contextmanager
def job_report(spec: ReleaseSpec) -> Iterator[JobReport | None]:
    """A ``JobReport`` when running in GitHub Actions (written on exit), else ``None``."""
    if not in_actions():
        yield None
        return
    report = JobReport(spec)
    try:
        yield report
    finally:
        report.finish()


def _load_manifest(path: Path) -> Manifest | None:
    try:
        return Manifest.load(path) if path.is_file() else None
    except InputError:
        return None


# -- Markdown ----------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else ""


def _contamination(facts: ContaminationFacts | None) -> str:
    """The contamination check: per task, the documents found by any method."""
    if facts is None:
        return ""
    rows = [
        [
            task.task + (" ⚠" if task.marked else ""),
            task.documents,
            task.any_method,
            f"{task.share:.1%}",
        ]
        for task in facts.tasks
    ]
    methods = ", ".join(method.label for method in facts.methods)
    parts = [
        "### Contamination check\n",
        f"{facts.segments:,} training texts against {facts.documents:,} test documents "
        f"({methods}).\n",
        _table(["Task", "Documents", "Found", "Share"], rows),
    ]
    parts += [f"- ❌ {_cell(line)}\n" for line in facts.failures]
    parts += [f"- not checked: {_cell(t.task)} ({_cell(t.reason)})\n" for t in facts.skipped]
    return "\n".join(part for part in parts if part)


def _evaluation(facts: EvaluateFacts | None) -> str:
    if facts is None:
        return ""
    gate = facts.gate
    compared = {(c.task, c.metric, c.filter): c for c in gate.compared} if gate else {}
    records = facts.results
    base = base_scores(records, facts.base_results)
    rows = []
    for result in records:
        before = compared.get(result.key)
        score = base.get(result.key)
        rows.append(
            [
                result.task,
                result.metric,
                _number(result.value),
                _number(result.stderr),
                "" if result.n_shot is None else result.n_shot,
                _number(before.previous) if before else "",
                change(before.drop) if before else "",
                *((score.cells() if score else ("", "")) if base else ()),
            ]
        )
    header = ["Task", "Metric", "Value", "± stderr", "Shots", "Previous", "Change"]
    parts = ["### Evaluation\n", _table(header + (["Base", "Difference"] if base else []), rows)]
    if gate is not None:
        verdict = "✅ passed" if gate.passed else "❌ failed"
        parts.append(f"**Gate: {verdict}**\n")
        items = [
            f"- {label}: {_cell(item)}\n"
            for label, found in (
                ("failure", gate.failures),
                ("warning", gate.warnings),
                ("flag", gate.flagged),
            )
            for item in found
        ]
        parts.append("".join(items))
    sanity = []
    if facts.equivalence is not None:
        agreement = facts.equivalence.top1_agreement
        sanity.append(["merged vs base + adapter, top-1 agreement", f"{agreement:.1%}"])
    if (ppl := facts.perplexity) is not None:
        shown = " → ".join(_number(value) for value in (ppl.base, ppl.merged))
        sanity.append(["perplexity base → merged", shown])
    parts.append(_table(["Sanity check", "Result"], sanity))
    return "\n".join(part for part in parts if part)


def _card_section(lints: list[CardLint]) -> str:
    if not lints:
        return ""
    status = lint_status(p for lint in lints for p in lint.problems)
    parts = [f"### Model card lint: {status}\n"]
    rows = [
        [lint.file, problem.line, problem.severity, problem.message]
        for lint in lints
        for problem in lint.problems
    ]
    parts.append(_table(["File", "Line", "Severity", "Problem"], rows) or "No problems.\n")
    return "\n".join(parts)


def _push_section(facts: PushFacts) -> str:
    rows = [
        [
            repo.role,
            f"[{repo.repo_id}]({repo.url})",
            repo.status,
            f"`{repo.commit[:12]}`",
            repo.tag or "",
            repo.pull_request or "",
        ]
        for repo in facts.repos
    ]
    table = _table(["Repo", "Hub", "Status", "Commit", "Tag", "Pull request"], rows)
    if not table:
        return ""
    if all(repo.status == "released-before" for repo in facts.repos):
        tag = facts.repos[0].tag
        table += f"\nAlready published: {tag} on the Hub holds this release; nothing to do.\n"
    return f"### Hub\n\n{table}"


def emit_check_results(paths: Iterable[Path], problems: list[Problem]) -> None:
    """For ``card check`` in Actions: annotations, a lint summary and ``card-lint``."""
    lints = [CardLint(str(path), [p for p in problems if p.path == str(path)]) for path in paths]
    annotate(problems)
    append_summary(_card_section(lints))
    set_outputs({"card-lint": lint_status(problems)})
