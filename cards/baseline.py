"""This release's scores beside the base model's (``card build --baseline``, a release's
eval.tasks.compare_base): which base score each score stands beside, and the difference.

The one home of that rule: the card's eval table, the CLI's scores table, the wizard's
eval step and the GitHub job summary all read it from here. A base score is matched on
(task, metric, filter); one measured with another n-shot is still shown, marked, so it
is never read as a like-for-like difference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cards.records import EvalRecord


@dataclass(frozen=True)
class BaseScore:
    value: float
    """The base model's score."""
    difference: float
    """This release's score less the base's (in the metric's own units)."""
    same_shots: bool

    def cells(self, spec: str = ".4g") -> tuple[str, str]:
        """The base's score and the difference, as the tables print them (``spec``: the
        table's number format; ``†``: the base was measured with another n-shot)."""
        mark = "" if self.same_shots else "†"
        return f"{self.value:{spec}}{mark}", f"{self.difference:+{spec}}{mark}"


def base_scores(
    records: Iterable[EvalRecord], baseline: Iterable[EvalRecord]
) -> dict[tuple[str, str, str], BaseScore]:
    """For each of ``records`` the base scored too: the base's score beside it."""
    base = {record.key: record for record in baseline}
    return {
        record.key: BaseScore(
            other.value, record.value - other.value, other.n_shot == record.n_shot
        )
        for record in records
        if (other := base.get(record.key)) is not None
    }
