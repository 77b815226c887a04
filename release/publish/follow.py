"""Follow the workflow run a tag push started, to its conclusion.

GitHub starts the run a few seconds after the push, so the run is first waited for
(the runs of the tagged commit whose ``head_branch`` is the tag: the branch push of the
same commit may start other workflows). Then the run and its jobs are read every
``interval`` seconds, and each change is said once: "queued", "in_progress", each
job's start and end, the conclusion. Stopping (the wizard closing, ctrl+c) leaves the
run going on GitHub; only the following ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from release.core.errors import WorkError
from release.publish.github_api import Run, RunsClient, connect
from release.publish.tag_push import Published

APPEAR_WITHIN = 120.0
"""Seconds to wait for GitHub to start the run before saying it did not."""
INTERVAL = 5.0
"""Seconds between two looks at a run (``gh run watch`` looks every 3)."""


def follow_published(
    done: Published,
    say: Callable[[str], None],
    *,
    interval: float | None = None,
    stop: threading.Event | None = None,
) -> Run | None:
    """Follow the run ``done``'s tag push started, through the GitHub CLI or a token
    (``github_api.connect``), saying each change; raise ``WorkError`` when the run ends
    other than in success. None: nothing to follow it with (``say`` was told where to
    look instead), or ``stop`` was set."""
    client = connect(done.github) if done.github is not None else None
    if client is None:
        say(f"{done.summary}; {done.follow_hint}")
        return None
    say(f"{done.summary}; following its workflow run")
    run = follow_run(client, done.commit, done.tag, say, interval=interval, stop=stop)
    if run is None:
        say(f"stopped following; the run goes on: {client.repo.actions_url}")
        return None
    if run.conclusion != "success":
        raise WorkError(
            f"the release workflow run ended {run.conclusion or run.status}: {run.url}",
            hint="read its log there; once fixed, rerun its failed jobs (a rerun of a "
            "published tag publishes nothing twice) or bump `version` and publish again",
        )
    say(f"released {done.tag}: {run.url}")
    return run


def follow_run(
    client: RunsClient,
    commit: str,
    tag: str,
    say: Callable[[str], None],
    *,
    interval: float | None = None,
    appear_within: float = APPEAR_WITHIN,
    stop: threading.Event | None = None,
) -> Run | None:
    """Say each change of the run for ``tag`` until it completes; return it completed,
    or None when ``stop`` was set first. ``interval``: default ``INTERVAL``."""
    stop = stop or threading.Event()
    interval = INTERVAL if interval is None else interval
    run = _wait_for_run(client, commit, tag, interval, appear_within, stop)
    if run is None:
        return None
    say(f"{run.name}: {run.url} (followed through {client.via})")
    said_run: tuple[str, str | None] | None = None
    said_jobs: dict[str, tuple[str, str | None]] = {}

    def say_run(run: Run) -> None:
        nonlocal said_run
        if said_run != (run.status, run.conclusion):
            said_run = (run.status, run.conclusion)
            say(f"run {_state(run.status, run.conclusion)}")

    while True:
        jobs = client.jobs(run.id)
        if run.status != "completed":
            say_run(run)
        for job in jobs:
            if said_jobs.get(job.name) != (job.status, job.conclusion):
                said_jobs[job.name] = (job.status, job.conclusion)
                say(f"  job {job.name}: {_state(job.status, job.conclusion)}")
        if run.status == "completed":
            say_run(run)
            return run
        if stop.wait(interval):
            return None
        run = client.run(run.id)


def _wait_for_run(
    client: RunsClient,
    commit: str,
    tag: str,
    interval: float,
    appear_within: float,
    stop: threading.Event,
) -> Run | None:
    deadline = time.monotonic() + appear_within
    while True:
        runs = [run for run in client.runs_of(commit) if run.head_branch == tag]
        if runs:
            return runs[0]
        if time.monotonic() >= deadline:
            raise WorkError(
                f"GitHub started no workflow run for {tag} (commit {commit[:12]}) "
                f"within {appear_within:.0f} s",
                hint=f"check that a workflow runs on tags v* and that Actions are enabled: "
                f"{client.repo.actions_url}",
            )
        if stop.wait(interval):
            return None


def _state(status: str, conclusion: str | None) -> str:
    return f"{status} ({conclusion})" if status == "completed" and conclusion else status
