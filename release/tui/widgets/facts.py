"""Facts from the manifest as a compact two-column table, and a table that becomes a
list where the terminal is too narrow for it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text


def facts_table(rows: Iterable[tuple[str, str | Text]], title: str | None = None) -> Table:
    table = Table.grid(padding=(0, 2))
    table.title = title
    table.title_justify = "left"
    table.title_style = "bold"
    table.add_column(style="dim", no_wrap=True)
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    return table


def verdict(passed: bool, good: str = "pass", bad: str = "FAIL") -> Text:
    return Text(f"✔ {good}" if passed else f"✘ {bad}", style="bold green" if passed else "bold red")


@dataclass(frozen=True)
class TableOrList:
    """``table`` where each of its columns fits the width with its longest word whole;
    else the same rows as a list (each row's first cell in bold, then ``column: value``
    for the others), so a narrow terminal never squeezes a number to "…"."""

    table: Table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        unbounded = options.update_width(2**16)  # Measurement is capped at the width given
        if Measurement.get(console, unbounded, self.table).minimum <= options.max_width:
            yield self.table
            return
        table = self.table
        if table.title:
            yield Text(str(table.title), style="bold")
        headers = [str(column.header) for column in table.columns]
        columns = [list(column.cells) for column in table.columns]
        for row in zip(*columns, strict=True):
            first, *rest = row
            yield Text.assemble(("• ", "bold"), (Text(first) if isinstance(first, str) else first))
            for header, cell in zip(headers[1:], rest, strict=True):
                if str(cell):
                    yield Padding(Text.assemble((f"{header}: ", "dim"), cell), (0, 0, 0, 2))
        if table.caption:
            yield Text(str(table.caption), style="dim")
