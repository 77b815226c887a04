"""Merge: the adapter folded into the base, streamed tensor by tensor."""

from __future__ import annotations

from typing import Any

from cards.facts import count
from release.core.units import human
from release.tui.panes.base import StepPane
from release.tui.widgets.facts import facts_table


class MergePane(StepPane):
    stage = "merge"
    heading = "Merge"
    purpose = "Fold the adapter into the base: a standalone model, written shard by shard."
    run_label = "merge"

    def render_facts(self, facts: dict[str, Any]):
        return facts_table(
            [
                ("parameters", count(facts.get("merged_parameters", 0))),
                ("dtype", str(facts.get("dtype", "?"))),
                (
                    "written",
                    f"{human(facts.get('bytes_written', 0), 'bytes')} in "
                    f"{facts.get('shards', '?')} shard(s)",
                ),
                (
                    "tensors",
                    f"{facts.get('tensors_merged', 0)} of {facts.get('tensors', 0)} merged",
                ),
                ("peak memory", human(facts.get("peak_rss_bytes", 0), "bytes")),
                ("tokenizer", str(facts.get("tokenizer_from", "?"))),
            ],
            title="Merged model",
        )
