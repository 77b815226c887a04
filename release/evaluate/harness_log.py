"""How far lm-eval has got, read from its log (the child's stdout and stderr together).

lm-eval 0.4.13 first builds every task's requests, logging "Building contexts for TASK on
rank N..." once per task and process, then runs them by kind, all tasks together, with a
tqdm bar per kind on rank 0 ("Running loglikelihood requests: 42%|…| 7/18"). So a run
shows two steps in turn: the tasks as each is first built (however many processes print
it under accelerate's launcher), then each kind's requests done out of all. tqdm redraws
its bar with a carriage return, which a text-mode pipe reads as a line end: every redraw
is a line here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BUILDING = re.compile(r"Building contexts for (\S+)")
_REQUESTS = re.compile(r"Running (\w+) requests:\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)")


@dataclass(frozen=True)
class Step:
    """One progress step: ``done`` of ``total`` ``unit``, on ``what``."""

    done: int
    total: int
    unit: str
    what: str


class HarnessLog:
    """Reads the log line by line; ``tasks`` are the names the run was given (a group
    builds each of its tasks, so more may start than were named)."""

    def __init__(self, tasks: list[str]) -> None:
        self.tasks = tasks
        self.started: list[str] = []

    def read(self, line: str) -> Step | None:
        """The step ``line`` shows, or None (a line about something else, or a task
        another process started first)."""
        if (match := _REQUESTS.search(line)) is not None:
            return Step(int(match[2]), int(match[3]), "requests", match[1])
        match = _BUILDING.search(line)
        if match is None or match[1] in self.started:
            return None
        self.started.append(match[1])
        total = max(len(self.tasks), len(self.started))
        return Step(len(self.started) - 1, total, "tasks", match[1])
