"""A stage at work: its state line, a progress bar fed by ``Progress`` events, its log."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, ProgressBar, RichLog

from release.core.events import Log, Progress
from release.core.redact import redact
from release.core.units import human


class StageRun(Vertical):
    DEFAULT_CSS = """
    StageRun { height: auto; margin-top: 1; }
    StageRun > ProgressBar { display: none; }
    StageRun.-running > ProgressBar { display: block; }
    StageRun > RichLog { height: auto; max-height: 8; display: none; background: $surface; }
    StageRun.-has-log > RichLog { display: block; }
    StageRun > #state { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Label("", id="state", markup=False)
        yield ProgressBar(show_eta=False)
        yield RichLog(wrap=True, markup=False, max_lines=200)

    def _state(self, text: Text | str) -> None:
        self.query_one("#state", Label).update(text)

    def started(self, title: str) -> None:
        self.set_class(True, "-running")
        self.query_one(RichLog).clear()
        self.set_class(False, "-has-log")
        self.query_one(ProgressBar).update(total=None, progress=0)
        self._state(Text.assemble((f"{title}: running…", "bold"), ("  escape cancels", "dim")))

    def progress(self, event: Progress) -> None:
        self.query_one(ProgressBar).update(total=event.total, progress=event.done)
        done = human(event.done, event.unit)
        total = f" / {human(event.total, event.unit)}" if event.total else ""
        unit = "" if event.unit == "bytes" else f" {event.unit}"
        detail = f"  {redact(event.message)}" if event.message else ""
        self._state(Text.assemble(("running  ", "bold"), f"{done}{total}{unit}", (detail, "dim")))

    def log(self, event: Log) -> None:
        self.set_class(True, "-has-log")
        style = "yellow" if event.level == "warning" else ""
        prefix = "warning: " if event.level == "warning" else ""
        self.query_one(RichLog).write(Text(prefix + redact(event.message), style=style))

    def finished(self, seconds: float) -> None:
        self.set_class(False, "-running")
        self._state(
            Text.assemble(
                ("✔ done", "bold green"), (f" in {seconds:.1f} s — ctrl+n: next step", "dim")
            )
        )

    def ended(self, text: Text | str) -> None:
        """A state line for a stage that is not running (done before, skipped, failed)."""
        self.set_class(False, "-running")
        self._state(text)
