"""Commands that start or check a release: ``init``, ``wizard``, ``spec check`` and
``spec sources``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from release.cli import options
from release.cli.options import SpecArg


def init(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="The adapter folder (adapter_config.json); several folders (adapters or "
            "full fine-tunes of one base) write a merge recipe of them."
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the spec.")] = Path(
        "release.yaml"
    ),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing file.")
    ] = False,
) -> None:
    """Write a commented starter release.yaml for an adapter, or a merge recipe's for
    several inputs."""
    from release.core.errors import InputError
    from release.core.files import atomic_write_text
    from release.spec.starter import starter_spec

    if output.exists() and not overwrite:
        raise InputError(f"{output}: already exists", hint="pass --overwrite or choose --output")
    atomic_write_text(output, starter_spec(inputs, output))
    options.output.info(
        f"wrote {output}; fill in the card section, then: model-release spec check {output}"
    )


def wizard(
    targets: Annotated[
        list[Path] | None,
        typer.Argument(
            help="release.yaml, a folder holding one, or an adapter folder; several "
            "folders (adapters or full fine-tunes of one base) start a merge recipe of "
            "them, as `init` writes it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Walk a release interactively: intake, merge, eval, GGUF, card, push.

    Saves release.yaml as you go, so `model-release run` repeats the same release. A
    workspace with finished stages opens at the first unfinished step.
    """
    from release.tui import run_wizard

    run_wizard(targets)


def spec_check(spec: SpecArg = Path("release.yaml")) -> None:
    """Validate release.yaml: every problem with its line number; exit 2 if any."""
    from release.core.errors import MissingInputError
    from release.spec.schema import load_spec
    from release.spec.yaml_lines import YamlLocator

    loaded = load_spec(spec)
    local = {
        ("adapter", "path"): loaded.adapter.path if loaded.adapter else None,
        ("base", "path"): loaded.base.path,
        ("eval", "heldout_text"): loaded.eval.heldout_text,
        ("card", "template_dir"): loaded.card.template_dir,
        ("card", "template"): loaded.card.template,
        ("card", "gguf_template"): loaded.card.gguf_template,
        **{("eval", "results", i): path for i, path in enumerate(loaded.eval.results)},
    }
    for loc, path in local.items():
        if path is not None and not path.exists():
            line = YamlLocator(spec.read_text(encoding="utf-8")).line_of(loc)
            key = ".".join(str(p) for p in loc if isinstance(p, str))
            key += "".join(f"[{p}]" for p in loc if isinstance(p, int))
            where = f"{spec}:{line}" if line else str(spec)
            raise MissingInputError(f"{where}: {key}: {path} does not exist")
    if (recipe := loaded.merge.recipe) is not None:
        from release.merge.recipe_inputs import BaseIdentity, missing_inputs
        from release.spec.schema import recipe_where

        base = BaseIdentity(loaded.base.path or spec.parent, loaded.base.repo_id, loaded.base.path)
        for loc, path in missing_inputs(recipe, base, loaded.base_dir or spec.parent)[:1]:
            where, key = recipe_where(spec, loc)
            hub = "" if loc[-1] == "file" else ", or name a Hub repo as owner/name@revision"
            raise MissingInputError(
                f"{where}: {key}: {path} does not exist",
                hint=f"fix the path (relative to release.yaml){hub}",
            )
    options.output.info(f"{spec}: ok ({loaded.name} {loaded.tag})")


def spec_sources(spec: SpecArg = Path("release.yaml")) -> None:
    """Print each Hub repo the release downloads and the commit its revision resolves to
    now, one `FIELD REPO_ID REVISION COMMIT` line each. Downloads nothing; the GitHub
    Action keys its Hugging Face cache on these lines."""
    from release.checkpoint.snapshot import resolve_commit
    from release.spec.schema import load_spec

    loaded = load_spec(spec)
    downloaded = {
        "base": loaded.base.repo_id if loaded.base.path is None else None,
        "adapter": loaded.adapter.repo_id if loaded.adapter else None,
    }
    revisions = {
        "base": loaded.base.revision,
        "adapter": loaded.adapter.revision if loaded.adapter else None,
    }
    for field, repo_id in downloaded.items():
        if repo_id:
            commit = resolve_commit(repo_id, revisions[field], field=field)
            print(f"{field} {repo_id} {revisions[field] or 'main'} {commit}")
