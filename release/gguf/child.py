"""A Python child process that answers JSON lines: the GGUF stage's checks run in two.

The stage starts its children when it starts (``python -m MODULE``), so their imports
(transformers and torch, llama-cpp-python) run while the export writes; it then sends a
request as one JSON line and reads one JSON line back, as many times as it has files.
Bulky answers (logits) go through ``.npy`` files in a folder the request names.

The protocol has its own file descriptor: the child moves its stdout onto stderr at
start, so whatever a library prints there cannot end up in an answer. stderr goes to a
temporary file; when the child dies (an abort on GGML_ASSERT, a segfault, a Python
error) the parent turns how it ended and its last words since the request into one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import IO

from release.core.child_python import PYTHON, project_env


def child_env() -> dict[str, str]:
    """The child's environment: OpenMP threads that sleep while they wait.

    llama-cpp-python builds with OpenMP, whose threads spin at each barrier. On a machine
    whose cores other processes also use, two spinning threads wait on each other for
    most of their time slices: the probe prompts took 20-110 s with 2 threads and 2-3 s
    with one on a loaded 2-core machine; with ``OMP_WAIT_POLICY=PASSIVE`` 2 threads take
    what one does (and scale on an idle machine). A policy the user set is kept. The
    child imports this project (``project_env``)."""
    return project_env({"OMP_WAIT_POLICY": "PASSIVE", **os.environ})


def last_words(code: int, stderr: str, who: str) -> str:
    """What a child that failed said last (an assert, an error), with how it ended."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    asserted = [line for line in lines if "GGML_ASSERT" in line or "error" in line.lower()]
    said = (asserted or lines or ["no output"])[-1]
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
        return f"{who} crashed ({name}): {said}"
    return f"{who} failed (exit {code}): {said}"


class ChildDied(RuntimeError):
    """The child ended (or went silent past its time) before it answered."""


class LineChild:
    """``python -m module`` answering JSON lines; started at once, asked later."""

    def __init__(self, module: str, who: str) -> None:
        self.who = who
        # closed in close(): it lives as long as the child
        self._stderr: IO[bytes] = tempfile.TemporaryFile(prefix=f"{module}-stderr-")  # noqa: SIM115
        self._process = subprocess.Popen(
            [*PYTHON, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=child_env(),
        )
        self._pending = b""
        self._said_from = 0
        self._unanswered = 0

    def send(self, message: dict) -> None:
        """Hand the child a request; its answer is read by ``receive``."""
        self._said_from = self._stderr.seek(0, os.SEEK_END)
        self._unanswered += 1
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # it died already: receive says how

    def receive(self, timeout_s: float | None = None) -> dict:
        """The child's answer to the last request; ChildDied if it ended instead."""
        assert self._process.stdout is not None
        out = self._process.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([out], [], [], timeout_s)
            if not ready:
                self.close()
                raise ChildDied(f"{self.who}: no answer within {timeout_s} s")
            chunk = os.read(out, 1 << 16)
            if not chunk:
                raise ChildDied(self._how_it_ended())
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        self._unanswered -= 1
        return json.loads(line)

    def ask(self, message: dict, timeout_s: float | None = None) -> dict:
        self.send(message)
        return self.receive(timeout_s)

    def _how_it_ended(self) -> str:
        code = self._process.wait()
        self._stderr.seek(self._said_from)
        said = self._stderr.read().decode(errors="replace")
        return last_words(code, said, self.who)

    def close(self) -> None:
        """End the child (it stops when its stdin closes; at once, if it is still at work
        the caller no longer wants) and forget its stderr."""
        if self._unanswered and self._process.poll() is None:
            self._process.kill()
        if self._process.stdin and not self._process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout:
            self._process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> LineChild:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def serve(answer: Callable[[dict], dict]) -> None:
    """The child's side: answer each JSON line on stdin with one on the protocol's fd."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # a library printing to stdout now lands in stderr
    sys.stdout = sys.stderr
    for line in sys.stdin:
        protocol.write(json.dumps(answer(json.loads(line))) + "\n")
        protocol.flush()
