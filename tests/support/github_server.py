"""A local stand-in for the GitHub REST API's Actions runs, on 127.0.0.1.

Only what following a run reads, shaped as GitHub documents it
(docs.github.com/rest/actions/workflow-runs and /workflow-jobs):

- ``GET /repos/{owner}/{repo}/actions/runs?head_sha=SHA`` -> ``{"total_count",
  "workflow_runs": [...]}``, newest first;
- ``GET /repos/{owner}/{repo}/actions/runs/{id}`` -> the run;
- ``GET /repos/{owner}/{repo}/actions/runs/{id}/jobs`` -> ``{"total_count", "jobs"}``.

A run is scripted: GitHub lists it only after ``appears_after`` list requests (it starts
a few seconds after the push), its ``head_sha`` is resolved when first listed (the
commit the tag names in the test's remote, read with git), and each read of the run
moves it one state along its ``timeline``. Every request is recorded with its
Authorization header; a wrong or missing token is GitHub's 401 "Bad credentials".
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

JobState = tuple[str, str, str | None]
"""(job name, status, conclusion)."""


@dataclass(frozen=True)
class RunState:
    status: str
    conclusion: str | None = None
    jobs: tuple[JobState, ...] = ()


@dataclass
class ScriptedRun:
    id: int
    name: str
    head_branch: str
    timeline: list[RunState]
    resolve_sha: Callable[[], str]
    appears_after: int = 0
    step: int = 0
    head_sha: str | None = None

    @property
    def state(self) -> RunState:
        return self.timeline[min(self.step, len(self.timeline) - 1)]

    def as_json(self, base: str, repo: str) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "head_branch": self.head_branch,
            "head_sha": self.head_sha,
            "event": "push",
            "status": self.state.status,
            "conclusion": self.state.conclusion,
            "html_url": f"https://github.com/{repo}/actions/runs/{self.id}",
            "url": f"{base}/repos/{repo}/actions/runs/{self.id}",
        }


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    authorization: str | None


@dataclass
class GitHubActions:
    repo: str
    token: str
    runs: list[ScriptedRun] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def add_run(self, name: str, head_branch: str, timeline: list[RunState], **more) -> None:
        self.runs.append(ScriptedRun(1000 + len(self.runs), name, head_branch, timeline, **more))

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict]:
        prefix = f"/repos/{self.repo}/actions/runs"
        if path == prefix:
            lists = sum(1 for r in self.requests if r.path == prefix)
            shown = [run for run in self.runs if lists >= run.appears_after]
            for run in shown:
                run.head_sha = run.head_sha or run.resolve_sha()
            sha = query.get("head_sha", [None])[0]
            shown = [run for run in reversed(shown) if sha is None or run.head_sha == sha]
            items = [run.as_json(self.url, self.repo) for run in shown]
            return 200, {"total_count": len(items), "workflow_runs": items}
        match = re.fullmatch(re.escape(prefix) + r"/(\d+)(/jobs)?", path)
        run = next((r for r in self.runs if match and r.id == int(match[1])), None)
        if run is None or run.head_sha is None:
            return 404, {"message": "Not Found"}
        if match and match[2]:
            jobs = [
                {"id": index, "name": name, "status": status, "conclusion": conclusion}
                for index, (name, status, conclusion) in enumerate(run.state.jobs)
            ]
            return 200, {"total_count": len(jobs), "jobs": jobs}
        run.step += 1
        return 200, run.as_json(self.url, self.repo)


class GitHubServer:
    """``with GitHubServer(actions) as server:`` serves ``actions`` at ``server.url``."""

    def __init__(self, actions: GitHubActions) -> None:
        self.actions = actions
        handler = _handler(actions)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        actions.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GitHubActions:
        self._thread.start()
        return self.actions

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(actions: GitHubActions) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            authorization = self.headers.get("Authorization")
            with lock:
                if authorization != f"Bearer {actions.token}":
                    status, body = 401, {"message": "Bad credentials"}
                else:
                    status, body = actions.answer(parts.path, query)
                actions.requests.append(Request(parts.path, query, authorization))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler
