"""The runner: order, skip-on-unchanged, atomic stage folders (SIGKILL and resume:
tests/test_kill_resume.py)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from release.core.errors import InputError, StageError
from release.core.events import StageFailed, StageFinished, StageSkipped, StageStarted
from release.core.facts import StageFacts
from release.core.files import sha256_file
from release.core.manifest import MANIFEST_NAME, Manifest
from release.runner import run_release, stage_key, stage_states
from release.spec.schema import ReleaseSpec
from release.stages.base import Stage, StageContext, StageOutput, StageRun


class WriteFacts(StageFacts):
    """Facts of a stage of any name: a test runner's stages are named at run time."""

    stage: ClassVar[str] = ""
    length: int


class WriteStage(Stage):
    """Writes one file from a spec value; counts how often it really ran."""

    def __init__(self, name: str, depends_on: tuple[str, ...] = (), fail: bool = False):
        self.name, self.title, self.depends_on, self.fail = name, name.title(), depends_on, fail
        self.calls = 0

    def settings(self, spec):
        return {"summary": spec.card.summary}

    def input_paths(self, spec):
        return [] if self.depends_on else [spec.adapter.path]

    def run(self, ctx: StageContext) -> StageRun:
        self.calls += 1
        upstream = "".join((ctx.stage_dir(d) / "out.txt").read_text() for d in self.depends_on)
        (ctx.out_dir / "out.txt").write_text(upstream + ctx.spec.card.summary + self.name)
        yield ctx.progress(1, 1, "files")
        if self.fail:
            raise StageError(self.name, "broke on purpose")
        return StageOutput(facts=WriteFacts(length=len(upstream) + 1))


@pytest.fixture
def spec(tmp_path) -> ReleaseSpec:
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    return ReleaseSpec.model_validate(
        {
            "name": "t",
            "version": "1.0",
            "base": {"repo_id": "a/b"},
            "adapter": {"path": str(adapter)},
            "workspace": str(tmp_path / "ws"),
            "card": {"summary": "one"},
        }
    )


def test_runs_in_order_then_skips_what_is_unchanged(spec):
    first, second = WriteStage("first"), WriteStage("second", ("first",))
    events = list(run_release(spec, stages=[first, second]))
    assert [type(e) for e in events if not hasattr(e, "done")] == [
        StageStarted,
        StageFinished,
        StageStarted,
        StageFinished,
    ]
    assert (spec.workspace / "second" / "out.txt").read_text() == "onefirstonesecond"
    manifest = Manifest.load(spec.workspace / MANIFEST_NAME)
    record = manifest.stages["second"].outputs[0]
    assert record.path == "second/out.txt"
    assert record.sha256 == sha256_file(spec.workspace / "second" / "out.txt")

    again = list(run_release(spec, stages=[first, second]))
    assert [type(e) for e in again] == [StageSkipped, StageSkipped]
    assert (first.calls, second.calls) == (1, 1)


def test_a_changed_input_file_reruns_the_stage_and_its_dependants(spec):
    first, second = WriteStage("first"), WriteStage("second", ("first",))
    list(run_release(spec, stages=[first, second]))
    (spec.adapter.path / "adapter_config.json").write_text('{"r": 8}')
    list(run_release(spec, stages=[first, second]))
    assert (first.calls, second.calls) == (2, 1)  # first's output is byte-identical


def test_a_changed_setting_reruns_downstream(spec):
    first, second = WriteStage("first"), WriteStage("second", ("first",))
    list(run_release(spec, stages=[first, second]))
    changed = spec.model_copy(update={"card": spec.card.model_copy(update={"summary": "two"})})
    list(run_release(changed, stages=[first, second]))
    assert (first.calls, second.calls) == (2, 2)
    assert (spec.workspace / "second" / "out.txt").read_text() == "twofirsttwosecond"


def test_a_tampered_output_is_rebuilt(spec):
    first = WriteStage("first")
    list(run_release(spec, stages=[first]))
    (spec.workspace / "first" / "out.txt").write_text("edited by hand")
    list(run_release(spec, stages=[first]))
    assert first.calls == 2
    assert (spec.workspace / "first" / "out.txt").read_text() == "onefirst"


def test_a_failed_stage_leaves_no_output_and_keeps_the_last_good_record(spec):
    first = WriteStage("first")
    list(run_release(spec, stages=[first]))
    before = (spec.workspace / MANIFEST_NAME).read_bytes()
    broken = WriteStage("second", ("first",), fail=True)
    events = []
    with pytest.raises(StageError, match="broke on purpose"):
        for event in run_release(spec, stages=[first, broken]):
            events.append(event)
    assert isinstance(events[-1], StageFailed)
    assert not (spec.workspace / "second").exists()
    assert not list(spec.workspace.glob(".partial-*"))
    assert (spec.workspace / MANIFEST_NAME).read_bytes() == before


def test_unknown_stage_name_is_bad_input(spec):
    with pytest.raises(ValueError, match="unknown stage 'mrege'"):
        list(run_release(spec, stages=[WriteStage("merge")], only=["mrege"]))


class NotThisTime(WriteStage):
    def skip_reason(self, spec):
        return "not wanted"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_stage_states_say_what_a_run_would_do_and_write_nothing(spec):
    first, second, third = (
        WriteStage("first"),
        WriteStage("second", ("first",)),
        WriteStage("third"),
    )
    stages = [first, second, NotThisTime("extra"), third]
    assert stage_states(spec, stages) == dict.fromkeys(["first", "second", "third"], "pending") | {
        "extra": "skipped"
    }
    assert not spec.workspace.exists()  # no lock, no folder: it only looks
    list(run_release(spec, stages=stages))
    before = _snapshot(spec.workspace)
    assert stage_states(spec, stages) == {
        "first": "done",
        "second": "done",
        "extra": "skipped",
        "third": "done",
    }

    # An input file changed: the stage that reads it, and the one built on it, are stale.
    (spec.adapter.path / "adapter_config.json").write_text('{"r": 8}')
    (spec.workspace / "third" / "out.txt").write_text("edited by hand")
    states = stage_states(spec, stages)
    assert states == {"first": "stale", "second": "stale", "extra": "skipped", "third": "stale"}
    assert _snapshot(spec.workspace) == {
        **before,
        str(spec.workspace / "third" / "out.txt"): b"edited by hand",
    }
    list(run_release(spec, stages=stages))
    assert (first.calls, third.calls) == (2, 2)  # the runner reran what was stale
    assert stage_states(spec, stages)["second"] == "done"

    # A changed setting; a record the spec's stages do not know is ignored.
    changed = spec.model_copy(update={"card": spec.card.model_copy(update={"summary": "two"})})
    assert set(stage_states(changed, stages).values()) == {"stale", "skipped"}
    assert stage_states(spec, [third]) == {"third": "done"}

    # Without the upstream record, the downstream one cannot be trusted.
    manifest = Manifest.load(spec.workspace / MANIFEST_NAME)
    del manifest.stages["first"]
    manifest.save(spec.workspace / MANIFEST_NAME)
    assert stage_states(spec, [first, second]) == {"first": "pending", "second": "stale"}


def test_stage_states_ignore_the_manifest_of_another_release(spec):
    first = WriteStage("first")
    list(run_release(spec, stages=[first]))
    renamed = spec.model_copy(update={"version": "2.0"})
    assert stage_states(renamed, [first]) == {"first": "pending"}


def test_status_names_what_changed_and_how_to_redo_it(tmp_path, monkeypatch, capsys):
    import yaml

    from release.cli import main
    from tests.support.tui_workspace import snapshot_workspace

    monkeypatch.chdir(tmp_path)
    spec_path = snapshot_workspace(tmp_path, ("adapter", "merge", "evaluate"))
    spec = yaml.safe_load(spec_path.read_text())
    spec_path.write_text(yaml.safe_dump({**spec, "merge": {"shard_size": "2MB"}}))
    assert main(["status", str(spec_path)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if not line.startswith(" ")]  # under: why
    assert [line.split()[:2] for line in lines[:7]] == [
        ["adapter", "done"],
        ["merge", "changed"],
        ["contamination", "skipped"],
        ["evaluate", "changed"],
        ["gguf", "pending"],
        ["card", "pending"],
        ["push", "skipped"],
    ]
    assert "a run redoes it" in lines[1]
    assert "evaluate  changed since 2026-01-01T00:00:00+00:00: a run redoes it\n" in out
    assert "\n            merge runs again\n" in out  # why evaluate is redone
    assert " ".join(out.split()).endswith(f"next: model-release run {spec_path}")


class EditingStage(WriteStage):
    """Changes its own input file while it runs, as a user's editor might."""

    def run(self, ctx: StageContext) -> StageRun:
        (ctx.spec.adapter.path / "adapter_config.json").write_text('{"r": 16}')
        return (yield from super().run(ctx))


def test_an_input_changed_while_its_stage_ran_fails_the_stage(spec):
    """A first run keys its stage when the stage is done (the inputs hashed meanwhile):
    an input that changed during the run cannot be keyed as the one it read."""
    with pytest.raises(InputError, match=r"adapter_config\.json: changed while the first stage"):
        list(run_release(spec, stages=[EditingStage("first")]))
    assert not (spec.workspace / "first").exists()
    assert (
        "first"
        not in Manifest.load_or_new(spec.workspace / MANIFEST_NAME, name="t", version="1.0").stages
    )


class CachingStage(WriteStage):
    """Leaves a new file in its input folder, as Python's ``__pycache__`` does."""

    def run(self, ctx: StageContext) -> StageRun:
        cache = ctx.spec.adapter.path / "__pycache__"
        cache.mkdir()
        (cache / "utils.cpython-311.pyc").write_bytes(b"bytecode")
        return (yield from super().run(ctx))


def test_a_file_that_appeared_while_its_stage_ran_is_keyed_as_found(spec):
    stage = CachingStage("first")
    list(run_release(spec, stages=[stage]))
    assert [type(e) for e in run_release(spec, stages=[stage])] == [StageSkipped]
    assert stage.calls == 1


def test_a_first_run_is_keyed_as_a_later_run_keys_it(spec, tmp_path):
    """Keyed after it ran, with its inputs hashed on a background thread: the same key
    and input records as one computed from scratch."""
    big = spec.adapter.path / "weights.bin"
    big.write_bytes(bytes(range(256)) * 40_000)
    first = WriteStage("first")
    list(run_release(spec, stages=[first]))
    recorded = Manifest.load(spec.workspace / MANIFEST_NAME).stages["first"]
    fresh = Manifest(name="t", version="1.0")  # no cached hash: every file read now
    assert stage_key(first, spec, fresh) == (recorded.key, recorded.inputs)
    assert {r.path: r.sha256 for r in recorded.inputs}["weights.bin"] == sha256_file(big)


def test_a_stale_stage_says_which_setting_input_or_output_changed(spec):
    """Each way a stage goes stale is named: a setting (old -> new), an input file, an
    output, a stage before it that runs again."""
    from release.runner import stale_reasons

    first, second = WriteStage("first"), WriteStage("second", ("first",))
    list(run_release(spec, stages=[first, second]))

    def why(changed: ReleaseSpec) -> dict[str, list[str]]:
        manifest = Manifest.load(changed.workspace / MANIFEST_NAME)
        states = stage_states(changed, [first, second])
        return {s.name: stale_reasons(s, changed, manifest, states) for s in (first, second)}

    assert why(spec) == {"first": [], "second": []}
    summary = spec.model_copy(update={"card": spec.card.model_copy(update={"summary": "two"})})
    assert why(summary) == {
        "first": ['setting summary: "one" -> "two"'],
        "second": ["first runs again", 'setting summary: "one" -> "two"'],
    }
    (spec.adapter.path / "adapter_config.json").write_text('{"r": 8}')
    assert why(spec) == {
        "first": ["input adapter_config.json changed"],
        "second": ["first runs again"],
    }
    (spec.adapter.path / "adapter_config.json").write_text("{}")
    (spec.workspace / "second" / "out.txt").write_text("edited")
    assert why(spec) == {"first": [], "second": ["output second/out.txt changed"]}
    # a run says it as it redoes each stage
    from release.core.events import Log

    logged = [e for e in run_release(summary, stages=[first, second]) if isinstance(e, Log)]
    assert [(e.stage, e.message) for e in logged] == [
        ("first", 'runs again: setting summary: "one" -> "two"'),
        ("second", 'runs again: setting summary: "one" -> "two"'),
        ("second", "runs again: output second/out.txt changed"),
    ]
