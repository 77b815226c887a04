"""The "Release history" table from the facts' ``history`` entry.

The entry (filled by model-release from its manifests, or written by hand in a
facts.json) holds ``columns`` (score labels) and ``versions``, oldest first, each with
``version``, ``date``, ``reason`` (why it was not released; absent when it was) and one
cell per column: ``value``, and ``change`` (relative, + is better) against the release
before it, or ``differs`` (why the two were not compared); and ``missing``: earlier
versions whose manifest could not be read, where the history stops. Changes are shown,
never computed here.
"""

from __future__ import annotations

from typing import Any


def history_table(history: dict[str, Any] | None) -> dict[str, Any]:
    """Header, rows and footnotes; empty rows when there is no history."""
    if not history:
        return {"header": [], "rows": [], "notes": []}
    notes: list[str] = []
    rows = []
    for version in history.get("versions") or []:
        status = "released"
        if version.get("reason"):
            notes.append(f"{version['version']} was not released: {version['reason']}")
            status = f"not released ({len(notes)})"
        cells = []
        for cell in version.get("scores") or []:
            shown = "" if cell.get("value") is None else f"{cell['value']:.4f}"
            if cell.get("change") is not None:
                shown += f" ({cell['change']:+.1%})"
            elif cell.get("differs"):
                notes.append(cell["differs"])
                shown += f" (measured differently ({len(notes)}))"
            cells.append(shown)
        rows.append([version["version"], version.get("date") or "", status, *cells])
    notes += [f"The history stops before {line}" for line in history.get("missing") or []]
    header = ["Version", "Date", "Status", *history.get("columns", [])]
    return {"header": header, "rows": rows, "notes": notes}
