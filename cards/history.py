"""The "Release history" table from the facts' ``history`` (``cards.measured.HistoryFacts``).

The history is filled by model-release from its manifests, or written by hand in a
facts.json. Changes are shown, never computed here.
"""

from __future__ import annotations

from typing import Any

from cards.measured import HistoryFacts


def history_table(history: HistoryFacts | None) -> dict[str, Any]:
    """Header, rows and footnotes; empty rows when there is no history."""
    if history is None:
        return {"header": [], "rows": [], "notes": []}
    notes: list[str] = []
    rows = []
    for version in history.versions:
        status = "released"
        if version.reason:
            notes.append(f"{version.version} was not released: {version.reason}")
            status = f"not released ({len(notes)})"
        cells = []
        for cell in version.scores:
            shown = "" if cell.value is None else f"{cell.value:.4f}"
            if cell.change is not None:
                shown += f" ({cell.change:+.1%})"
            elif cell.differs:
                notes.append(cell.differs)
                shown += f" (measured differently ({len(notes)}))"
            cells.append(shown)
        rows.append([version.version, version.date or "", status, *cells])
    notes += [f"The history stops before {line}" for line in history.missing]
    header = ["Version", "Date", "Status", *history.columns]
    return {"header": header, "rows": rows, "notes": notes}
