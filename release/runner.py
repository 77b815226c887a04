"""Run a release: the stages in order, each skipped when its inputs are unchanged.

``run_release`` is a generator of events (``release.core.events``) so any front end can show
progress; it holds no UI. For every stage it:

1. asks the stage whether it applies to the spec (a GGUF stage with no quant types does
   not), and forgets the stage's old record when it does not;
2. computes the stage's key: a hash of its settings, its external input files (each by
   its content, or by the part of it the stage reads) and the recorded outputs and facts
   of the stages it depends on, with no absolute path in it (``stage_key``), so a release
   folder that moved finds its stages done;
3. skips the stage when the manifest holds that key and the recorded outputs are intact;
   a stage with no record (or forced) runs without waiting for its key and is keyed when
   done: the input files are hashed on background threads from the run's start
   (``Manifest.hashing_ahead``), while intake runs and the merge reads the same bytes;
4. otherwise runs it into a staging folder, renames the folder to ``<workspace>/<stage>``,
   records outputs and facts, and saves the manifest atomically.

A run killed at any point resumes from the last stage that finished; what the killed
run left in staging is cleared first (``release.core.files.clear_leftovers``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from release import __version__
from release.core.errors import InputError, Refused, StageError, named_stage
from release.core.events import (
    Event,
    Log,
    StageFailed,
    StageFinished,
    StageSkipped,
    StageStarted,
)
from release.core.files import clear_leftovers, iter_files, replace_dir
from release.core.manifest import (
    MANIFEST_NAME,
    FileRecord,
    Manifest,
    Refusal,
    StageRecord,
    dumps_canonical,
    now_iso,
)
from release.core.paths import relative_if_inside
from release.core.workspace import claim_workspace
from release.spec.schema import ReleaseSpec
from release.stages import default_stages
from release.stages.base import Stage, StageContext

LOCK_NAME = ".lock"

StageState = Literal["done", "stale", "pending", "skipped"]


CONTENT_KEYED = "<outside the spec's folder: keyed by its files' content>"


def stage_key(stage: Stage, spec: ReleaseSpec, manifest: Manifest) -> tuple[str, list[FileRecord]]:
    """The stage's key, and the records of the input files it hashed.

    Nothing in it depends on where the release's folder is (``spec.base_dir``): inputs
    and settings inside it are keyed by their path relative to it, so a copied or moved
    release (a CI checkout elsewhere) finds its stages done. An input outside it (a base
    model in a cache) is keyed by its files' content and their paths within it alone:
    its bytes say which base it is, and a cache moved elsewhere holds the same base.
    """
    roots = [path for path in stage.input_paths(spec) if path.exists()]
    inputs: list[FileRecord] = []
    read_in_part: dict[str, str] = {}
    for root in roots:
        anchor = _key_anchor(root, spec.base_dir)
        for file in _input_files(root, spec):
            part = stage.read_in_part(spec, file)
            if part is None:
                inputs.append(manifest.record(file, relative_to=anchor))
            else:
                read_in_part[os.path.relpath(file, anchor)] = part
    upstream = {
        dep: _upstream(manifest.stages[dep], stage.upstream_part.get(dep))
        for dep in stage.depends_on
        if dep in manifest.stages
    }
    payload = {
        "stage": stage.name,
        "settings": keyed_settings(stage, spec),
        "inputs": [record.model_dump() for record in inputs],
        "upstream": upstream,
    }
    if read_in_part:  # absent otherwise: the keys of stages that read whole files stay as they were
        payload["read_in_part"] = read_in_part
    return hashlib.sha256(dumps_canonical(payload).encode()).hexdigest(), inputs


def keyed_settings(stage: Stage, spec: ReleaseSpec) -> Any:
    """The stage's settings as its key holds them (paths portable, ``_portable``)."""
    roots = [path for path in stage.input_paths(spec) if path.exists()]
    return _portable(stage.settings(spec), spec.base_dir, {str(r) for r in roots})


def stale_reasons(
    stage: Stage, spec: ReleaseSpec, manifest: Manifest, states: dict[str, StageState]
) -> list[str]:
    """Why a run would do ``stage`` again although the manifest records it: each setting
    that changed (old -> new), each input file, each stage before it that runs again, each
    output that is not as recorded. Empty when it would be kept."""
    record = manifest.stages.get(stage.name)
    if record is None:
        return []
    reasons = [
        f"{dep} runs again"
        for dep in stage.depends_on
        if states.get(dep) in ("stale", "pending") and dep not in stage.upstream_part
    ]
    key, inputs = stage_key(stage, spec, manifest)
    if key != record.key:
        recorded = record.settings is not None  # None: written by an older model-release
        if recorded:
            reasons += _changed_settings(record.settings, keyed_settings(stage, spec))
        reasons += _changed_files(record.inputs, inputs)
        if not reasons:
            before = "the outputs of a stage before it"
            reasons.append(f"{before} changed" if recorded else f"its settings or {before} changed")
    for output in record.outputs:
        path = spec.workspace / output.path
        if not path.is_file():
            reasons.append(f"output {output.path} is gone")
        elif path.stat().st_size != output.bytes or manifest.hash_file(path) != output.sha256:
            reasons.append(f"output {output.path} changed")
    return reasons


def out_of_date(spec: ReleaseSpec, stages: Sequence[Stage] | None = None) -> dict[str, list[str]]:
    """The stages a run started now would do, in order, each with why: what changed
    since its record (``stale_reasons``, as ``status`` shows them), or that it was never
    built: what a dry run's plan marks and the push's refusal names."""
    stages = list(stages if stages is not None else default_stages())
    manifest = Manifest.load_or_new(
        spec.workspace / MANIFEST_NAME, name=spec.name, version=spec.version
    )
    states = stage_states(spec, stages)
    behind: dict[str, list[str]] = {}
    for stage in stages:
        if states[stage.name] == "pending":
            behind[stage.name] = ["not built yet"]
        elif states[stage.name] == "stale":
            behind[stage.name] = stale_reasons(stage, spec, manifest, states) or ["changed"]
    return behind


def _changed_settings(old: Any, new: Any, where: str = "") -> list[str]:
    if old is None and isinstance(new, dict) and new:  # a section keyed only when set
        old = {}
    if new is None and isinstance(old, dict) and old:
        new = {}
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            line
            for name in dict.fromkeys([*old, *new])
            for line in _changed_settings(
                old.get(name), new.get(name), f"{where}.{name}" if where else str(name)
            )
        ]
    if old == new:
        return []
    return [f"setting {where}: {_shown(old)} -> {_shown(new)}"]


def _shown(value: Any) -> str:
    text = "(unset)" if value is None else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:59] + "…"


def _changed_files(old: list[FileRecord], new: list[FileRecord]) -> list[str]:
    before = {record.path: record for record in old}
    now = {record.path: record for record in new}
    lines = [f"input {path} is new" for path in now if path not in before]
    lines += [f"input {path} is gone" for path in before if path not in now]
    lines += [
        f"input {path} changed"
        for path, record in now.items()
        if path in before and before[path].sha256 != record.sha256
    ]
    return lines


def _upstream(record: StageRecord, part: str | None) -> dict[str, Any]:
    """What a stage's key holds of a stage it depends on: all its outputs and facts, or
    the one fact it reads (``Stage.upstream_part``)."""
    if part is not None:
        return {"part": {part: record.facts.get(part)}}
    return {"outputs": [output.model_dump() for output in record.outputs], "facts": record.facts}


def _input_files(root: Path, spec: ReleaseSpec) -> list[Path]:
    return [file for file in iter_files(root) if not _own_file(file, spec)]


def _read_in_full(stages: Sequence[Stage], spec: ReleaseSpec) -> list[Path]:
    """The input files ``stages`` are keyed on by content: what a run hashes ahead."""
    return [
        file
        for stage in stages
        for root in stage.input_paths(spec)
        if root.exists()
        for file in _input_files(root, spec)
        if stage.read_in_part(spec, file) is None
    ]


def _input_stats(stage: Stage, spec: ReleaseSpec) -> dict[Path, tuple[int, int]]:
    """Size and mtime of each input file of ``stage``: what tells that one changed."""
    stats = {}
    for root in stage.input_paths(spec):
        if root.exists():
            for file in _input_files(root, spec):
                stat = file.stat()
                stats[file] = (stat.st_size, stat.st_mtime_ns)
    return stats


def _own_file(path: Path, spec: ReleaseSpec) -> bool:
    """The release's own files, its spec and its workspace, are never its inputs: a
    workspace inside the adapter's folder would otherwise key every run on the last."""
    return path == spec.file or path.is_relative_to(spec.workspace)


def _key_anchor(root: Path, base_dir: Path | None) -> Path:
    """What the files of the input ``root`` are keyed relative to (see ``stage_key``)."""
    if base_dir is not None and root.is_relative_to(base_dir):
        return base_dir
    return root if root.is_dir() else root.parent


def _portable(value: Any, base_dir: Path | None, content_keyed: set[str]) -> Any:
    """``value`` (a stage's settings) with its absolute paths keyed as ``stage_key`` says:
    relative when inside ``base_dir``, a placeholder for the inputs keyed by content."""
    if isinstance(value, dict):
        return {key: _portable(item, base_dir, content_keyed) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(item, base_dir, content_keyed) for item in value]
    if isinstance(value, str | Path) and os.path.isabs(value):
        if str(value) in content_keyed:
            return CONTENT_KEYED
        return relative_if_inside(value, base_dir)
    return value


def outputs_intact(record: StageRecord, workspace: Path, manifest: Manifest) -> bool:
    for output in record.outputs:
        path = workspace / output.path
        if not path.is_file() or path.stat().st_size != output.bytes:
            return False
        if manifest.hash_file(path) != output.sha256:
            return False
    return True


def stage_states(spec: ReleaseSpec, stages: Sequence[Stage] | None = None) -> dict[str, StageState]:
    """Where each stage stands, as a run started now would find it; runs and writes nothing.

    ``done``: recorded with the key a run would compute now and its outputs intact, so a
    run skips it. ``stale``: recorded, but its settings, inputs or outputs changed since,
    or a stage it depends on is stale or pending, so a run does it again. ``pending``: no
    record. ``skipped``: the stage does not apply to the spec. Records of stages not in
    ``stages``, and a manifest of another release, are ignored as the runner ignores them.
    """
    stages = list(stages if stages is not None else default_stages())
    manifest = Manifest.load_or_new(
        spec.workspace / MANIFEST_NAME, name=spec.name, version=spec.version
    )
    states: dict[str, StageState] = {}
    for stage in stages:
        record = manifest.stages.get(stage.name)
        if stage.skip_reason(spec):
            states[stage.name] = "skipped"
        elif record is None:
            states[stage.name] = "pending"
        elif (
            any(
                states.get(dep) in ("stale", "pending")
                for dep in stage.depends_on
                if dep not in stage.upstream_part  # its part is in the key
            )
            or record.key != stage_key(stage, spec, manifest)[0]
            or not outputs_intact(record, spec.workspace, manifest)
        ):
            states[stage.name] = "stale"
        else:
            states[stage.name] = "done"
    return states


@contextlib.contextmanager
def workspace_lock(workspace: Path) -> Iterator[None]:
    """One run per workspace at a time: a second one fails at once instead of racing."""
    workspace.mkdir(parents=True, exist_ok=True)
    with open(workspace / LOCK_NAME, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"{workspace}: another model-release run is using this workspace",
                hint="wait for it to finish, or stop it",
            ) from None
        yield


def run_release(
    spec: ReleaseSpec,
    *,
    stages: Sequence[Stage] | None = None,
    only: Sequence[str] | None = None,
    force: Sequence[str] = (),
    cancel: threading.Event | None = None,
) -> Generator[Event, None, Manifest]:
    """Run ``spec``'s release; yields events, returns the final manifest.

    ``only`` limits the run to the named stages (the others must have run before, or
    are not needed); ``force`` reruns the named stages even when nothing changed.
    """
    stages = list(stages if stages is not None else default_stages())
    known = {stage.name for stage in stages}
    for name in [*(only or ()), *force]:
        if name not in known:
            raise InputError(f"unknown stage {name!r}", hint=f"stages are: {', '.join(known)}")
    cancel = cancel or threading.Event()
    workspace = spec.workspace
    manifest_path = workspace / MANIFEST_NAME

    claim_workspace(workspace, _inputs(stages, spec), MANIFEST_NAME)
    with workspace_lock(workspace):
        clear_leftovers(workspace)
        manifest = Manifest.load_or_new(manifest_path, name=spec.name, version=spec.version)
        hashed_before = dict(manifest.hash_cache)
        todo = [stage for stage in stages if not only or stage.name in only]
        applying = [stage for stage in todo if not stage.skip_reason(spec)]
        with manifest.hashing_ahead(_read_in_full(applying, spec)):
            for stage in todo:
                reason = stage.skip_reason(spec)
                if reason:
                    if manifest.stages.pop(stage.name, None) is not None:
                        manifest.save(manifest_path)  # only a folder it recorded is removed
                        shutil.rmtree(workspace / stage.name, ignore_errors=True)
                    yield StageSkipped(stage.name, reason)
                    continue
                missing = [
                    dep
                    for dep in stage.depends_on
                    if dep not in manifest.stages and not _skipped(stages, dep, spec)
                ]
                if missing:
                    raise StageError(
                        stage.name,
                        f"needs the {', '.join(missing)} stage first",
                        hint="run the release without --stage, or include those stages",
                    )
                previous = manifest.stages.get(stage.name)
                keyed = None  # it runs whatever its key (first run, forced): keyed when done
                why: list[str] = []
                if stage.name not in force and previous is not None:
                    keyed = stage_key(stage, spec, manifest)
                    if previous.key == keyed[0] and outputs_intact(previous, workspace, manifest):
                        for note in stage.notes_when_kept(spec, manifest):
                            yield Log(stage.name, note, "warning")
                        yield StageSkipped(stage.name, f"unchanged since {previous.finished_at}")
                        continue
                    why = stale_reasons(stage, spec, manifest, {})
                record = yield from _run_stage(stage, spec, manifest, workspace, keyed, cancel, why)
                manifest.stages[stage.name] = record
                manifest.save(manifest_path)
                yield StageFinished(stage.name, record.seconds, record.facts)
        if manifest.hash_cache != hashed_before and manifest_path.exists():
            # a run that skipped every stage still hashed (a moved folder, touched files):
            # keep the hashes, or every later run and status hashes gigabytes again
            manifest.forget_missing_hashes()
            manifest.save(manifest_path)
    return manifest


def _inputs(stages: Sequence[Stage], spec: ReleaseSpec) -> list[Path]:
    """The spec and the external inputs of every stage this spec runs (an earlier
    release's manifest, which may sit in this workspace, is not one the workspace could
    overwrite)."""
    used = [stage for stage in stages if not stage.skip_reason(spec)]
    paths = [*([spec.file] if spec.file else []), *(p for s in used for p in s.input_paths(spec))]
    return [path for path in paths if path.name != MANIFEST_NAME]


def _skipped(stages: Sequence[Stage], name: str, spec: ReleaseSpec) -> bool:
    return any(stage.name == name and stage.skip_reason(spec) for stage in stages)


def _run_stage(
    stage: Stage,
    spec: ReleaseSpec,
    manifest: Manifest,
    workspace: Path,
    keyed: tuple[str, list[FileRecord]] | None,
    cancel: threading.Event,
    why: Sequence[str] = (),
) -> Generator[Event, None, StageRecord]:
    """Run ``stage`` into its staging folder and rename that to its final name.

    ``keyed``: its key and input records, computed to decide whether it runs; None when
    it runs anyway. It is then keyed once it is done, so the inputs it reads are hashed
    while it runs (``Manifest.hashing_ahead``) instead of before; an input that changed
    meanwhile fails the stage, since the key could not tell which version it read.
    ``why``: what changed since its record (``stale_reasons``), logged as it starts."""
    staging = workspace / f".partial-{stage.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    ctx = StageContext(spec, manifest, workspace, staging, stage.name, cancel)
    yield StageStarted(stage.name, stage.title)
    for line in why:
        yield ctx.log(f"runs again: {line}")
    started = time.perf_counter()
    stats = _input_stats(stage, spec) if keyed is None else {}
    try:
        with named_stage(stage.name):
            output = yield from stage.run(ctx)
            # a cancel during the stage's last event (a small merge may report only
            # when done) still means nothing of the stage is kept
            ctx.check_cancelled()
            key, inputs = keyed or _keyed_after(stage, spec, manifest, stats)
        final = workspace / stage.name
        replace_dir(staging, final)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, Refused):
            manifest.refused[stage.name] = Refusal(
                finished_at=now_iso(), message=exc.message, facts=exc.facts
            )
            manifest.save(workspace / MANIFEST_NAME)
        yield StageFailed(stage.name, exc)
        raise
    manifest.refused.pop(stage.name, None)
    for name, sha256 in output.hashed.items():
        manifest.remember_hash(final / name, sha256)
    outputs = [manifest.record(path, relative_to=workspace) for path in iter_files(final)]
    return StageRecord(
        key=key,
        finished_at=now_iso(),
        seconds=round(time.perf_counter() - started, 3),
        inputs=inputs,
        outputs=outputs,
        settings=keyed_settings(stage, spec),
        facts=output.facts.as_json(),
        measured=output.measured,
        tools={"model-release": __version__, **stage.tools(spec)},
    )


def _keyed_after(
    stage: Stage, spec: ReleaseSpec, manifest: Manifest, stats: dict[Path, tuple[int, int]]
) -> tuple[str, list[FileRecord]]:
    """The key of a stage that just ran, its input files as they were when it started.

    A file that appeared meanwhile is keyed as found (Python writes ``__pycache__`` into
    an lm-eval task folder whose tasks import a ``utils.py``); one that changed or went
    away fails the stage, since the key could not say which version it read."""
    key = stage_key(stage, spec, manifest)
    now = _input_stats(stage, spec)
    changed = sorted(path for path, stat in stats.items() if now.get(path) != stat)
    if changed:
        raise InputError(
            f"{changed[0]}: changed while the {stage.name} stage read it",
            hint="run the release again once the file is complete",
        )
    return key
