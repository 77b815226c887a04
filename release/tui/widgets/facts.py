"""Facts from the manifest as a compact two-column table."""

from __future__ import annotations

from collections.abc import Iterable

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
