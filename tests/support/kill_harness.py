"""Kill `model-release run --json` with SIGKILL at a chosen progress event; judge what it left.

``run_cli`` starts the CLI in its own process group, reads its JSON-lines events as they
come and sends SIGKILL to the whole group right after the Nth progress event of a stage.
The child may get a little further before the signal lands (it does not wait for the
reader), which is what a real kill looks like; ``landing`` says where it did land.

``check_nothing_partial`` is the invariant a kill must keep: every file under a final
name (any path without a hidden part: ``.partial-<stage>`` staging folders, ``.old-``
folders and ``.<name>.partial`` temporary files are not final names) is the manifest,
which parses, or an output the manifest records with the same size and sha256. One
exception is inherent to a stage folder renamed into place before its record is saved:
that folder may be unrecorded, but then each of its files must be complete, i.e. equal
to what an uninterrupted run wrote.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from release.core.files import iter_files, sha256_file
from release.core.manifest import MANIFEST_NAME, FileRecord, Manifest
from release.hub.plan import release_manifest_bytes

REPO = Path(__file__).resolve().parents[2]
PUSH_MANIFEST = "push/manifest.json"
"""The release manifest the push stage writes: it holds timings, so it is compared with
what the workspace's own manifest says it must be, not with another run's."""


@dataclass(frozen=True)
class KillPoint:
    stage: str
    after: int
    """SIGKILL after this many progress events of ``stage`` (1 = the first)."""

    def __str__(self) -> str:
        return f"{self.stage}#{self.after}"


@dataclass
class CliRun:
    returncode: int
    events: list[dict] = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def of_type(self, kind: str) -> list[dict]:
        return [event for event in self.events if event["type"] == kind]

    def progress_count(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in self.of_type("progress"):
            counts[event["stage"]] = counts.get(event["stage"], 0) + 1
        return counts


def cli_env(**overrides: str) -> dict[str, str]:
    """The environment of the test process (HF_HOME etc. already isolated) plus overrides."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **overrides}


def run_cli(
    spec: Path,
    env: dict[str, str],
    *,
    kill: KillPoint | None = None,
    force: tuple[str, ...] = (),
    timeout: float = 300,
) -> CliRun:
    """Run ``model-release run --json SPEC``; with ``kill``, SIGKILL it at that point."""
    args = [sys.executable, "-m", "release.cli", "run", "--json", str(spec)]
    args += [f"--force={stage}" for stage in force]
    stderr_path = spec.parent / f".stderr-{os.getpid()}.txt"
    with open(stderr_path, "w+") as stderr:
        process = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=True,  # its own process group: SIGKILL reaches any helper
        )
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            _kill_group(process)

        watchdog = threading.Timer(timeout, expire)
        watchdog.start()
        run = CliRun(returncode=0)
        started = time.monotonic()
        seen = 0
        try:
            assert process.stdout is not None
            for line in process.stdout:
                run.stdout += line
                event = json.loads(line)  # --json: stdout holds nothing but events
                run.events.append(event)
                if kill and event["type"] == "progress" and event["stage"] == kill.stage:
                    seen += 1
                    if seen == kill.after:
                        _kill_group(process)
                        break
            process.stdout.close()
            run.returncode = process.wait()
            run.seconds = time.monotonic() - started
        finally:
            watchdog.cancel()
            if process.poll() is None:
                _kill_group(process)
                process.wait()
        stderr.seek(0)
        run.stderr = stderr.read()
    stderr_path.unlink()
    assert not timed_out.is_set(), f"{' '.join(args)}: still running after {timeout} s"
    return run


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
        os.killpg(process.pid, signal.SIGKILL)


def load_manifest(workspace: Path) -> Manifest | None:
    """The workspace's manifest, which must parse whenever it exists."""
    path = workspace / MANIFEST_NAME
    return Manifest.load(path) if path.exists() else None


def final_files(workspace: Path) -> dict[str, FileRecord]:
    """Every file under a final name but the manifest, measured now."""
    files = {}
    for path in iter_files(workspace):
        relative = path.relative_to(workspace).as_posix()
        if relative != MANIFEST_NAME:
            files[relative] = FileRecord(
                path=relative, bytes=path.stat().st_size, sha256=sha256_file(path)
            )
    return files


def recorded_outputs(manifest: Manifest | None) -> dict[str, FileRecord]:
    if manifest is None:
        return {}
    return {out.path: out for record in manifest.stages.values() for out in record.outputs}


def complete_outputs(reference: Manifest, manifest: Manifest | None) -> dict[str, FileRecord]:
    """What each output of an uninterrupted run is, byte for byte: the reference run's
    outputs, and the release manifest the push derives from this workspace's manifest."""
    expected = recorded_outputs(reference)
    expected.pop(PUSH_MANIFEST, None)
    if manifest is not None:
        content = release_manifest_bytes(manifest)
        digest = hashlib.sha256(content).hexdigest()
        expected[PUSH_MANIFEST] = FileRecord(path=PUSH_MANIFEST, bytes=len(content), sha256=digest)
    return expected


def check_nothing_partial(workspace: Path, reference: Manifest) -> set[str]:
    """Assert the kill invariant (module docstring); return the stages whose folder was
    renamed into place but not yet recorded (at most one)."""
    manifest = load_manifest(workspace)
    recorded = recorded_outputs(manifest)
    complete = complete_outputs(reference, manifest)
    unrecorded = set()
    for relative, actual in final_files(workspace).items():
        if recorded.get(relative) == actual:
            continue
        assert complete.get(relative) == actual, (
            f"{relative}: under a final name, but neither recorded in manifest.json "
            f"({recorded.get(relative)}) nor complete ({complete.get(relative)}): {actual}"
        )
        unrecorded.add(relative.split("/")[0])
    assert len(unrecorded) <= 1, f"several stage folders not recorded: {sorted(unrecorded)}"
    return unrecorded
