"""Merge: the adapter folded into the base, streamed tensor by tensor."""

from __future__ import annotations

from typing import Any

from cards.facts import count
from release.core.units import human
from release.merge.facts import MergeFacts
from release.tui.panes.base import StepPane
from release.tui.widgets.facts import facts_table


class MergePane(StepPane):
    facts_type = MergeFacts
    heading = "Merge"
    purpose = "Fold the adapter into the base: a standalone model, written shard by shard."
    run_label = "merge"

    def render_facts(self, facts: MergeFacts, measured: dict[str, Any]):
        return facts_table(
            [
                ("parameters", count(facts.merged_parameters or 0)),
                ("dtype", str(facts.dtype or "?")),
                (
                    "written",
                    f"{human(facts.bytes_written or 0, 'bytes')} in {facts.shards or '?'} shard(s)",
                ),
                ("tensors", f"{facts.tensors_merged or 0} of {facts.tensors or 0} merged"),
                ("peak memory", human(measured.get("peak_rss_bytes", 0), "bytes")),
                ("tokenizer", str(facts.tokenizer_from or "?")),
            ],
            title="Merged model",
        )
