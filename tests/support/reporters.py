"""A ``Reporter`` for driving domain code outside a stage (tests, benchmarks): its events
are the plain messages, and nothing is ever cancelled."""

from __future__ import annotations


class SilentReporter:
    def __init__(self, stage: str = "evaluate") -> None:
        self.stage = stage

    def log(self, message: str, level: str = "info") -> str:
        return message

    def progress(self, done: float, total: float | None, unit: str, message: str = "") -> str:
        return message

    def check_cancelled(self) -> None:
        return None
