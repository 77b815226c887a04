"""Eval: merge equivalence, perplexity, chat smoke outputs, benchmark scores (stored or
run by eval.tasks) and the release gate."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from cards.baseline import base_scores
from release.core.errors import WorkError
from release.evaluate.contamination.facts import ContaminationFacts
from release.evaluate.facts import ComparisonFacts, EvaluateFacts, SmokeFacts, evaluated
from release.evaluate.harness import task_names
from release.report.compare import score_rows
from release.spec.schema import ReleaseSpec
from release.tui.panes.base import StepPane
from release.tui.widgets.facts import facts_table, verdict


class EvalPane(StepPane):
    facts_type = EvaluateFacts
    heading = "Sanity eval"
    purpose = "Prove the merged model is base + adapter, reads text well, and can chat."
    run_label = "evaluate"

    def compose_form(self) -> ComposeResult:
        benchmarks = Static("", classes="benchmarks")
        benchmarks.display = False  # until show_facts finds eval.tasks in the spec
        yield benchmarks

    def show_facts(self) -> None:
        """The recorded facts, or what the stage measured before the gate said no (the
        comparison is what the user needs to see then)."""
        benchmarks = self.query_one(".benchmarks", Static)
        benchmarks.update(_benchmarks(self.session.spec))
        benchmarks.display = bool(benchmarks.content)
        manifest = self.session.manifest()
        facts = evaluated(manifest) if manifest else None
        shown = self.render_facts(facts, self.session.measured(self.stage)) if facts else ""
        if checked := ContaminationFacts.of(manifest):  # its own stage, run with this step
            shown = Group(_contamination_table(checked), Text(""), *([shown] if shown else []))
        self.query_one(".facts", Static).update(shown)

    def render_facts(self, facts: EvaluateFacts, measured: dict[str, Any]):
        parts: list[Any] = []
        if (eq := facts.equivalence) is not None:
            parts.append(
                facts_table(
                    [
                        (
                            "top-1 agreement",
                            f"{eq.top1_agreement:.1%} (min {eq.min_top1_agreement:.0%})",
                        ),
                        (
                            "logit error",
                            f"{eq.relative_error:.1%} of the adapter's effect "
                            f"(max {eq.max_relative_error:.0%})",
                        ),
                        ("verdict", verdict(eq.passed is not False)),
                    ],
                    title="Merged vs base + adapter",
                )
            )
        if (ppl := facts.perplexity) is not None:
            parts.append(
                facts_table(
                    [
                        (
                            "perplexity",
                            f"base {ppl.base:.2f} · merged {ppl.merged:.2f}",
                        ),
                        ("ratio", f"×{ppl.ratio:.3f} (max ×{ppl.max_ratio})"),
                        ("verdict", verdict(ppl.passed is not False)),
                    ],
                    title=f"Held-out text ({ppl.tokens} tokens)",
                )
            )
        if facts.smoke:
            parts.append(_smoke_table(facts.smoke))
        if facts.results:
            parts.append(_scores_table(facts))
        if (gate := facts.gate) is not None:
            detail = (
                f"{len(gate.compared)} scores compared with the last release"
                if gate.compared
                else ("no earlier release to compare with")
            )
            rows: list[tuple[str, str | Text]] = [
                ("gate", verdict(gate.passed, "passed", "FAILED")),
                ("", detail),
            ]
            rows += [("failure", Text(f, style="red")) for f in gate.failures]
            rows += [("warning", Text(w, style="yellow")) for w in gate.warnings]
            rows += [("not compared", Text(f, style="yellow")) for f in gate.flagged]
            gate_parts = [facts_table(rows, title="Release gate")]  # the verdict first
            if gate.compared:
                gate_parts.append(_comparison_table(gate.compared))
            parts[:0] = gate_parts
        return Group(*[item for part in parts for item in (part, Text(""))])


def _benchmarks(spec: ReleaseSpec | None) -> str:
    """What eval.tasks will run, before it runs: its tasks, its backend, and whether the
    base runs them too."""
    tasks = spec.eval.tasks if spec else None
    if tasks is None:
        return ""
    try:
        names = ", ".join(task_names(tasks))
    except WorkError as error:  # a folder without task files: the run says it too
        return f"Benchmarks: {error}"
    base = "; on the base too, for comparison" if tasks.compare_base else ""
    return f"Benchmarks (lm-eval, {tasks.backend}): {names}{base}"


def _contamination_table(facts: ContaminationFacts) -> Table:
    """Per task: the documents found in the training data, by any of the methods."""
    methods = ", ".join(method.label for method in facts.methods)
    table = Table(
        title=f"Contamination check: {facts.segments:,} training texts ({methods})",
        title_justify="left",
        title_style="bold",
    )
    for column in ("task", "documents", "found", "share"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task in facts.tasks:
        style = "red" if task.marked else ("yellow" if task.any_method else "")
        table.add_row(
            task.task + (" (marked)" if task.marked else ""),
            f"{task.documents:,}",
            Text(f"{task.any_method:,}", style=style),
            Text(f"{task.share:.1%}", style=style),
        )
    return table


def _comparison_table(compared: list[ComparisonFacts]) -> Table:
    """The gate's comparison, as ``model-release compare`` and the release notes show it."""
    table = Table(title="Against the last release", title_justify="left", title_style="bold")
    for column in ("task", "metric", "filter", "n-shot", "before", "now", "change"):
        table.add_column(column, justify="right" if column in ("before", "now") else "left")
    for row in score_rows(compared):
        table.add_row(*row[:-1], Text(row[-1], style="red" if row[-1].startswith("-") else ""))
    return table


def _scores_table(facts: EvaluateFacts) -> Table:
    """Each benchmark score (stored, or run by eval.tasks) beside the last release's, and
    beside the base model's when eval.tasks.compare_base ran it."""
    compared = {(c.task, c.metric, c.filter): c for c in facts.gate.compared} if facts.gate else {}
    records = facts.results
    base = base_scores(records, facts.base_results)
    table = Table(title="Benchmarks", title_justify="left", title_style="bold", expand=True)
    if facts.harness is not None and facts.harness.launch is not None:
        table.caption = f"lm-eval {facts.harness.backend}, {facts.harness.launch.describe()}"
        table.caption_justify = "left"
    columns = ["task", "metric", "value", "previous", *(["base", "difference"] if base else [])]
    for column in columns:
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for record in records:
        before = compared.get(record.key)
        score = base.get(record.key)
        table.add_row(
            record.task,
            record.metric_label,
            f"{record.value:.4g}",
            f"{before.previous:.4g}" if before else "",
            *((score.cells() if score else ("", "")) if base else ()),
        )
    return table


def _smoke_table(smoke: list[SmokeFacts]) -> Table:
    table = Table(title="Chat smoke test", title_justify="left", title_style="bold", expand=True)
    table.add_column("prompt", ratio=2)
    table.add_column("answer", ratio=3)
    table.add_column("", width=3)
    for item in smoke:
        answer = Text(item.output.strip())
        if item.problems:
            answer.append("\n" + "; ".join(item.problems), style="red")
        table.add_row(item.prompt, answer, verdict(item.passed, "", ""))
    return table
