"""Everything the CLI prints goes through here: rich output, one place to redact secrets.

``EventPrinter`` turns runner events into a live progress bar per stage and a line per
finished stage; without a terminal (a CI log, a pipe), where a bar cannot redraw, it prints
a progress line instead, at most one every ``PLAIN_PROGRESS_EVERY_S`` seconds. Every
string is passed through ``redact`` first, so an HF_TOKEN that slipped into an exception
message or a log line never reaches the terminal.
``JsonLinesPrinter`` is the machine-readable twin (``--json``): one JSON object per event
per line on stdout, for CI tools and other front ends that follow a run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from cards.baseline import base_scores
from cards.records import EvalRecord
from release.core.events import (
    Event,
    Log,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from release.core.events import Progress as ProgressEvent
from release.core.redact import redact
from release.core.units import human
from release.evaluate.facts import EvaluateFacts
from release.gguf.facts import GGUFFacts, QuantScoresFacts
from release.report.compare import quant_note, quant_rows


class _PipedConsole(Console):
    """rich answers a closed pipe with SystemExit(1); the CLI's ``main`` takes the
    BrokenPipeError itself (`status | head -1` is no error)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


class Output:
    """The CLI's two streams. Without a terminal (a CI log, a pipe) rich would wrap at 80
    columns, splitting paths and messages mid-word; there a line stays whole."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.out = _PipedConsole(highlight=False, soft_wrap=not sys.stdout.isatty())
        self.err = _PipedConsole(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())
        self.quiet = quiet

    def info(self, text: str) -> None:
        if not self.quiet:
            self.out.print(escape(redact(text)))

    def markup(self, text: str) -> None:
        """Print trusted rich markup (our own strings only)."""
        if not self.quiet:
            self.out.print(redact(text))

    def error(self, text: str) -> None:
        self.err.print(escape(redact(text)), style="red", soft_wrap=True)


PLAIN_PROGRESS_EVERY_S = 10.0
"""Without a terminal, the longest a working stage's progress goes unprinted (a CI log
that shows nothing for minutes reads as a hang)."""


class EventPrinter:
    """Render runner events: a progress bar while a stage works, a line when it ends."""

    def __init__(self, output: Output, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.output = output
        self._clock = clock
        self._plain_lines = not output.quiet and not sys.stdout.isatty()
        self._last_line_at = 0.0
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=output.out,
            transient=True,
            disable=output.quiet or not sys.stdout.isatty(),
        )
        self._task = None

    def __enter__(self) -> EventPrinter:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def show(self, event: Event) -> None:
        out = self.output
        match event:
            case StageStarted(stage, title):
                self._task = self.progress.add_task(title, total=None, detail="")
                self._last_line_at = self._clock()
                out.markup(f"[bold]▶ {escape(title)}[/bold]")
            case ProgressEvent(stage, done, total, unit, message):
                if self._task is not None:
                    detail = message or (
                        f"{human(done, unit)} / {human(total, unit)}" if total else ""
                    )
                    self.progress.update(
                        self._task, completed=done, total=total, detail=redact(detail)
                    )
                self._plain_progress(done, total, unit, message)
            case Log(stage, message, level):
                self._last_line_at = self._clock()
                style = "yellow" if level == "warning" else "dim"
                prefix = "warning: " if level == "warning" else ""
                out.markup(f"  [{style}]{escape(prefix + redact(message))}[/{style}]")
            case StageSkipped(stage, reason):
                out.markup(f"[dim]○ {stage}: skipped ({escape(reason)})[/dim]")
            case StageFinished(stage, seconds, facts):
                self._end_task()
                out.markup(f"[green]✔ {stage}[/green] [dim]{seconds:.1f} s[/dim]")
                if stage == EvaluateFacts.stage and not out.quiet:  # under the stage, as its lines
                    scores = EvaluateFacts.model_validate(facts)
                    if scores.results:
                        table = scores_table(scores.results, scores.base_results)
                        out.out.print(Padding(table, (0, 0, 0, 2)))
                if stage == GGUFFacts.stage and not out.quiet:
                    gguf = GGUFFacts.model_validate(facts)
                    if gguf.benchmarks:
                        out.out.print(Padding(quant_scores_table(gguf.benchmarks), (0, 0, 0, 2)))
            case StageFailed(stage, _):
                self._end_task()
                out.markup(f"[red]✘ {stage}: failed[/red]")

    def _plain_progress(self, done: float, total: float | None, unit: str, message: str) -> None:
        """A progress line where no bar can show, once ``PLAIN_PROGRESS_EVERY_S`` has
        passed since the stage's last line."""
        now = self._clock()
        if not self._plain_lines or now - self._last_line_at < PLAIN_PROGRESS_EVERY_S:
            return
        self._last_line_at = now
        amount = f"{human(done, unit)} / {human(total, unit)}" if total else human(done, unit)
        amount += "" if unit == "bytes" else f" {unit}"
        share = f" ({100 * done / total:.0f}%)" if total else ""
        text = f"{amount}{share}" + (f": {message}" if message else "")
        self.output.markup(f"  [dim]… {escape(redact(text))}[/dim]")

    def _end_task(self) -> None:
        if self._task is not None:
            self.progress.remove_task(self._task)
            self._task = None


def scores_table(records: list[EvalRecord], base_results: list[EvalRecord]) -> Table:
    """The evaluate stage's benchmark scores, and the base model's beside them when
    eval.tasks.compare_base ran it."""
    base = base_scores(records, base_results)
    table = Table(box=None, padding=(0, 2), pad_edge=False)
    columns = ["task", "metric", "filter", "value", "± stderr", "shots"]
    columns += ["base", "difference"] if base else []
    for column in columns:
        left = column in ("task", "metric", "filter", "shots")
        table.add_column(column, justify="left" if left else "right")
    for record in records:
        score = base.get(record.key)
        table.add_row(
            escape(record.task),
            escape(record.metric),
            escape(record.filter),
            f"{record.value:.4g}",
            "" if record.stderr is None else f"{record.stderr:.4g}",
            "" if record.n_shot is None else str(record.n_shot),
            *((score.cells() if score else ("", "")) if base else ()),
        )
    return table


def quant_scores_table(runs: list[QuantScoresFacts]) -> Table:
    """The release's tasks on its GGUF files (eval.tasks.gguf) beside the merged model's
    scores, each with its change (+ is better)."""
    header, rows = quant_rows(runs)
    table = Table(box=None, padding=(0, 2), pad_edge=False, caption=quant_note(runs))
    table.caption_justify = "left"
    for column in header:
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    return table


class JsonLinesPrinter:
    """Write each runner event as one JSON object on a line of stdout, flushed at once.

    Objects carry ``type`` (``stage_started``, ``progress``, ``log``, ``stage_skipped``,
    ``stage_finished``, ``stage_failed``), ``stage`` and the event's fields; a failure's
    ``error`` is its one-line message. Every string is redacted, facts included, before
    it is escaped into JSON (where a token's escaped form could differ from the token).
    """

    def __enter__(self) -> JsonLinesPrinter:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def show(self, event: Event) -> None:
        line = json.dumps(_redacted(event_json(event)), ensure_ascii=False, allow_nan=False)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def event_json(event: Event) -> dict[str, Any]:
    """The JSON object ``--json`` prints for ``event``."""
    match event:
        case StageStarted(stage, title):
            return {"type": "stage_started", "stage": stage, "title": title}
        case ProgressEvent(stage, done, total, unit, message):
            fields = {"done": done, "total": total, "unit": unit, "message": message}
            return {"type": "progress", "stage": stage, **fields}
        case Log(stage, message, level):
            return {"type": "log", "stage": stage, "level": level, "message": message}
        case StageSkipped(stage, reason):
            return {"type": "stage_skipped", "stage": stage, "reason": reason}
        case StageFinished(stage, seconds, facts):
            return {"type": "stage_finished", "stage": stage, "seconds": seconds, "facts": facts}
        case StageFailed(stage, error):
            from release.report.error_table import explain

            return {"type": "stage_failed", "stage": stage, "error": explain(error)[0]}
    raise TypeError(f"not a runner event: {event!r}")


def _redacted(value: Any) -> Any:
    """``value`` with every string redacted; what JSON cannot hold becomes its str(), and
    a non-finite number null (Python's NaN is not JSON: strict parsers reject it)."""
    if isinstance(value, dict):
        return {redact(str(key)): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))
