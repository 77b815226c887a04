"""Facts from the manifest as a compact two-column table, and a table that becomes a
list where the terminal is too narrow for it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, RenderResult
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
    """``table`` where each of its columns fits the width with its longest word whole
    (one that does not wrap, its widest cell); else the same rows as a list (each row's
    first cell in bold, then ``column: value`` for the others), so a narrow terminal
    never squeezes a number to "…"."""

    table: Table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if _fits_whole(console, options, self.table):
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


def _fits_whole(console: Console, options: ConsoleOptions, table: Table) -> bool:
    """Whether rich lays ``table`` out in ``options.max_width`` breaking no word: each
    column as wide as its longest word, and a ``no_wrap`` one as its widest cell.

    The table's own measure will not do: its minimum counts only the longest word of a
    ``no_wrap`` column ("same" of "same top-1"), yet rich never narrows such a column
    below its widest cell, so it takes the width from the wrapping ones (the file
    names), which rich narrows from the widest down, not each to its longest word. So
    this asks rich for the widths it will draw and compares each column's with what it
    needs (rich's own measures, padding included; private, as rich offers no public
    way to ask)."""
    unbounded = options.update_width(2**16)  # a column's measure is capped at the width given
    drawn = table._calculate_column_widths(
        console, options.update_width(options.max_width - table._extra_width)
    )
    for column, width in zip(table.columns, drawn, strict=True):
        needed = table._measure_column(console, unbounded, column)
        if width < (needed.maximum if column.no_wrap else needed.minimum):
            return False
    return True
