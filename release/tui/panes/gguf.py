"""GGUF: choose quant types (with estimated sizes), then the files and their checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection
from textual.worker import Worker, get_current_worker

from release.core.units import human
from release.gguf.facts import GGUFFacts
from release.gguf.sizes import estimate_gguf_bytes
from release.merge.facts import AdapterFacts, MergeFacts
from release.report.compare import quant_note, quant_rows
from release.spec.schema import GGUF_TYPES
from release.tui.panes.base import StepPane
from release.tui.widgets.facts import TableOrList, verdict


class GGUFPane(StepPane):
    facts_type = GGUFFacts
    heading = "GGUF export"
    purpose = "Files for llama.cpp and friends, each read back and compared with the model."
    run_label = "export"
    _planned_for: tuple[Path, int] | None = None
    """The merged model whose planned sizes are shown (its folder, its mtime)."""
    _sizes: dict[str, int] | None = None
    """The sizes shown beside the types, kept to redraw a type's line when it is toggled."""

    def compose_form(self) -> ComposeResult:
        spec = self.session.spec
        chosen = set(spec.gguf.types) if spec else set()
        yield Label("", classes="field-label", id="gguf-types-label")
        yield SelectionList[str](
            *[
                Selection(_choice(t, None, t in chosen), t, t in chosen, id=f"type-{t}")
                for t in GGUF_TYPES
            ],
            id="gguf-types",
        )

    def manifest_changed(self) -> None:
        """Show the estimated sizes: from the parameter count once intake has counted
        them, then, once the merge is done, each file planned tensor by tensor from the
        merged model (llama.cpp's K-quant mixes and fallbacks included) in a thread, as
        that reads every header and the tokenizer (about a second on SmolLM2)."""
        merged = self._merged_dir()
        key = (merged, merged.stat().st_mtime_ns) if merged else None
        if key is not None and key == self._planned_for:
            return  # shown already, and the merged model has not changed
        parameters = self._parameters()
        bulk = estimate_gguf_bytes(parameters, GGUF_TYPES) if parameters else {}
        self._show_sizes(bulk, "" if parameters else " appear after intake")
        self._planned_for = None
        if merged is not None:
            self._plan_sizes(merged, key)

    def _merged_dir(self) -> Path | None:
        spec = self.session.spec
        if spec is None or self.session.facts(MergeFacts) is None:
            return None
        folder = spec.workspace / MergeFacts.stage
        return folder if folder.is_dir() else None

    @work(thread=True, exclusive=True, group="gguf-sizes")
    def _plan_sizes(self, merged: Path, key: tuple[Path, int]) -> None:
        from release.gguf.needs import gguf_file_bytes

        worker = get_current_worker()
        try:
            sizes = gguf_file_bytes(merged, GGUF_TYPES)
        except Exception:  # a folder the gguf step will refuse itself: the estimate stays
            return
        self.app.call_from_thread(self._show_planned, worker, sizes, key)

    def _show_planned(self, worker: Worker, sizes: dict[str, int], key: tuple) -> None:
        if worker.is_cancelled:  # a later manifest change started another
            return
        self._planned_for = key
        self._show_sizes(sizes, " of the merged model's files")

    def _show_sizes(self, sizes: dict[str, int], label: str) -> None:
        self._sizes = sizes
        self._show_choices()
        self.query_one("#gguf-types-label", Label).update(
            f"Quant types (space toggles); estimated sizes{label}"
        )

    def _parameters(self) -> int:
        merged, adapter = self.session.facts(MergeFacts), self.session.facts(AdapterFacts)
        return (merged and merged.merged_parameters) or (adapter and adapter.base_parameters) or 0

    def chosen(self) -> list[str]:
        selected = set(self.query_one(SelectionList).selected)
        return [t for t in GGUF_TYPES if t in selected]

    def spec_changes(self) -> dict[str, Any]:
        return {"gguf": {"types": self.chosen()}}

    def _show_choices(self) -> None:
        """Each type's line: its check mark when chosen (not colour alone), its size."""
        choices, sizes = self.query_one(SelectionList), self._sizes or {}
        chosen = set(choices.selected)
        for gguf_type in GGUF_TYPES:
            prompt = _choice(gguf_type, sizes.get(gguf_type), gguf_type in chosen)
            choices.replace_option_prompt(f"type-{gguf_type}", prompt)

    def on_selection_list_selected_changed(self) -> None:
        self._show_choices()
        if not self.chosen():
            self.show_problems(["no type chosen: the GGUF step will be skipped"])
        else:
            self.show_problems([])

    def render_facts(self, facts: GGUFFacts, measured: dict[str, Any]):
        table = Table(
            title="Files",
            title_justify="left",
            title_style="bold",
            expand=True,
            caption="top-1 agreement with the merged model where it is confident, per "
            "loader; pass at: the least each quant type must reach",
            caption_justify="left",
        )
        # names share the release's prefix: fold a long one rather than cut off its type
        table.add_column("file", overflow="fold")
        table.add_column("size", justify="right", no_wrap=True)
        table.add_column("top-1 agreement", overflow="fold")
        table.add_column("pass at", no_wrap=True)
        # what each file loses on the held-out text, as on the cards (llama-perplexity's)
        for label in ("KLD mean", "KLD 99%", "same top-1", "PPL ratio"):
            table.add_column(label, justify="right", no_wrap=True)
        table.add_column("check", no_wrap=True)
        for file in facts.files:
            agreement = file.confident_top1_agreement or file.top1_agreement
            shown = ", ".join(f"{loader} {v:.1%}" for loader, v in agreement.items())
            limit = "" if file.min_top1_agreement is None else f"≥ {file.min_top1_agreement:.1%}"
            passed = file.passed is not False  # the stage keeps no file that failed
            loss = ["—"] * 4
            if (q := file.quality) is not None:
                loss = [f"{q.kld_mean:.4f}", f"{q.kld_p99:.4f}", f"{q.same_top1:.1%}"]
                loss.append(f"{q.ppl_ratio:.3f}")
            size = human(file.bytes, "bytes")
            table.add_row(file.name, size, shown, limit, *loss, verdict(passed))
        if not facts.benchmarks:
            return TableOrList(table)
        return Group(TableOrList(table), Text(""), TableOrList(_benchmarks_table(facts)))


def _benchmarks_table(facts: GGUFFacts) -> Table:
    """The release's tasks on the files (eval.tasks.gguf) beside the merged model's
    scores, as the CLI prints them."""
    header, rows = quant_rows(facts.benchmarks)
    table = Table(
        title="Benchmarks on the files",
        title_justify="left",
        title_style="bold",
        expand=True,
        caption=quant_note(facts.benchmarks),
        caption_justify="left",
    )
    for column in header:
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _choice(gguf_type: str, size: int | None, chosen: bool) -> Text:
    estimate = f"≈ {human(size, 'bytes')}" if size else ""
    mark = ("✓ ", "bold green") if chosen else ("  ", "")
    return Text.assemble(mark, (f"{gguf_type:<8}", "bold"), (f"{estimate:>11}", "dim"))
