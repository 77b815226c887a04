"""``model-release card``: check any model card, or build ours from stored facts.

Neither command runs a model: ``build`` reads the card spec, facts and stored eval
results, and ``check`` reads only the card.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from cards.errors import CardError

app = typer.Typer(
    help="Check and build model cards.", no_args_is_help=True, pretty_exceptions_enable=False
)


@app.command()
def check(
    paths: Annotated[list[Path], typer.Argument(help="Model cards (README.md) to check.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print problems as JSON.")] = False,
) -> None:
    """Check model cards: metadata, model-index, citations and claims in the text.

    Prints FILE:LINE: error|warning: MESSAGE. Exit 1 on errors, 2 on an unreadable file.
    """
    from cards.lint import lint_file, to_json

    problems, unreadable = [], False
    for path in paths:
        try:
            problems += lint_file(path)
        except CardError as error:
            typer.echo(f"error: {error}", err=True)
            unreadable = True
    if not json_output and os.environ.get("GITHUB_ACTIONS") == "true":
        from release.github import emit_check_results  # annotations on the PR's files

        emit_check_results(paths, problems)
    if json_output:
        typer.echo(to_json(problems))
    else:
        for problem in problems:
            typer.echo(problem.format())
    errors = sum(p.severity == "error" for p in problems)
    if not json_output:
        warnings = len(problems) - errors
        typer.echo(f"{len(paths)} card(s): {errors} error(s), {warnings} warning(s)", err=True)
    raise typer.Exit(2 if unreadable else 1 if errors else 0)


@app.command()
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
    from release.files import atomic_write_text

    try:
        ctx = load_context(metadata, results or [], baseline or [], facts)
        render = render_gguf_card if gguf else render_model_card
        atomic_write_text(output, render(ctx, template_dir))
        if eval_results_dir:
            for name, text in eval_results_files(ctx.records).items():
                target = eval_results_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(target, text)
    except (CardError, OSError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(CardError.exit_code) from None
    typer.echo(f"wrote {output}", err=True)
