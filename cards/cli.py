"""``model-release card``: check any model card, or build ours from stored facts.

Neither command runs a model: ``build`` reads the card spec, facts and stored eval
results, and ``check`` reads only the card.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cards.errors import CardError
from cards.redact import redact

if TYPE_CHECKING:
    from cards.lint import Problem

OnChecked = Callable[[list[Path], "list[Problem]"], None]
"""Called after ``check`` with the cards and their problems: how a host reports them
(model-release hands in GitHub Actions annotations; cards itself knows no CI)."""


def make_app(on_checked: OnChecked | None = None) -> typer.Typer:
    """The ``card`` command group; ``on_checked`` sees every ``check``'s problems."""
    app = typer.Typer(
        help="Check and build model cards.", no_args_is_help=True, pretty_exceptions_enable=False
    )
    app.command()(_check_command(on_checked))
    app.command()(build)
    return app


def _check_command(on_checked: OnChecked | None) -> Callable[..., None]:
    def check(
        paths: Annotated[list[Path], typer.Argument(help="Model cards (README.md) to check.")],
        json_output: Annotated[
            bool, typer.Option("--json", help="Print problems as JSON.")
        ] = False,
    ) -> None:
        """Check model cards: metadata, model-index, citations and claims in the text.

        Prints FILE:LINE: error|warning: MESSAGE. Exit 1 on errors, 2 on an unreadable file.
        """
        _check(paths, json_output, None if json_output else on_checked)

    return check


def _check(paths: list[Path], json_output: bool, on_checked: OnChecked | None) -> None:
    from cards.lint import lint_file, to_json

    problems, unreadable = [], False
    for path in paths:
        try:
            problems += lint_file(path)
        except CardError as error:
            typer.echo(redact(f"error: {error}"), err=True)
            unreadable = True
    if on_checked is not None:
        on_checked(paths, problems)
    if json_output:
        typer.echo(redact(to_json(problems)))
    else:
        for problem in problems:
            typer.echo(redact(problem.format()))
    errors = sum(p.severity == "error" for p in problems)
    if not json_output:
        warnings = len(problems) - errors
        typer.echo(f"{len(paths)} card(s): {errors} error(s), {warnings} warning(s)", err=True)
    raise typer.Exit(2 if unreadable else 1 if errors else 0)


def build(
    metadata: Annotated[
        Path, typer.Option("--metadata", help="card.yaml: Hub metadata, repo_id and prose.")
    ],
    results: Annotated[
        list[Path] | None,
        typer.Option("--results", help="lm-eval results_*.json or simple YAML/CSV results."),
    ] = None,
    baseline: Annotated[
        list[Path] | None,
        typer.Option("--baseline", help="The base model's results, shown for comparison."),
    ] = None,
    facts: Annotated[
        Path | None, typer.Option("--facts", help="facts.json: measured facts.")
    ] = None,
    template_dir: Annotated[
        Path | None, typer.Option("--template-dir", help="Templates that override ours.")
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option(
            "--template", help="Your own template, rendered instead of ours (or the GGUF card's)."
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", help="Where to write the card.")] = Path(
        "README.md"
    ),
    gguf: Annotated[bool, typer.Option("--gguf", help="Build the GGUF repo's card.")] = False,
    eval_results_dir: Annotated[
        Path | None,
        typer.Option("--eval-results-dir", help="Also write the Hub's .eval_results/*.yaml here."),
    ] = None,
) -> None:
    """Build README.md from card.yaml, facts and stored eval results, without running a model."""
    from cards.evals import eval_results_files
    from cards.render import render_gguf_card, render_model_card
    from cards.spec import load_context

    try:
        ctx = load_context(metadata, results or [], baseline or [], facts)
        if gguf:
            text = render_gguf_card(ctx, template_dir, template)
        else:
            text = render_model_card(ctx, template_dir, template)
        _write_atomically(output, text)
        if eval_results_dir:
            for name, text in eval_results_files(ctx.records).items():
                target = eval_results_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                _write_atomically(target, text)
    except (CardError, OSError) as error:
        typer.echo(redact(f"error: {error}"), err=True)
        raise typer.Exit(CardError.exit_code) from None
    typer.echo(f"wrote {output}", err=True)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` under a temporary name beside ``path``, then rename it: a card is
    never seen half-written, and never holds a token (``cards.redact``)."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(redact(text))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


app = make_app()
"""``python -m cards``: the card commands on their own."""
