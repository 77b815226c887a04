"""Render model cards from a ``CardContext`` through jinja2 templates.

The YAML front matter is never templated: it is ``CardMetadata`` passed through
huggingface_hub's ``ModelCardData`` (model-index built from the eval records by
huggingface_hub too) and written the way ``ModelCardData.to_yaml`` writes it, so it is
exactly what the Hub parses. Templates only write the body, in a sandboxed
environment with ``StrictUndefined`` (a misspelt variable is an error, not a blank).

Our templates are the top-level ``templates`` package's. A user's template directory is
searched first, so one file can be overridden and the rest taken from ours; a user's own
model-card or GGUF-card template (``card.template``, ``card.gguf_template``: a file) is
rendered instead of ours, its folder searched first for what it includes, and can
``{% extends "model-release/model_card.md.j2" %}`` (or ``gguf_card.md.j2``: ours, each
under ``model-release/``) to keep our sections and add or replace blocks.
Every template sees the same context (``_view``; docs/card-context.md lists it): besides
the prepared tables, the raw ``facts`` and the ``size`` / ``count`` filters to format
them. Every rendered card is linted before it is returned.
"""

from __future__ import annotations

import re
import traceback
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cards import facts as fact_rows
from cards import yamlio
from cards.baseline import base_scores
from cards.citations import method_citations, unique_citations
from cards.errors import CardError, invalid
from cards.evals import dataset_label, to_model_index
from cards.history import history_table
from cards.measured import GGUFFileFacts, MeasuredFacts
from cards.records import EvalRecord
from cards.schema import CardMetadata, RepoId
from cards.usage import gguf_usage, usage
from cards.view import TemplateView

OURS = "model-release/"
"""The prefix under which a user's template finds ours: ``model-release/model_card.md.j2``."""


CardKind = Literal["adapter", "finetune", "merge", "quantized"]


def card_kind(metadata: CardMetadata) -> CardKind:
    """What the repo holds, as its metadata says: ``base_model_relation`` when given,
    else an adapter when ``library_name`` is peft, else a fine-tuned full model.
    Each kind has its own prose and usage snippet (a PeftModel snippet on a full
    model's repo would not load)."""
    if metadata.base_model_relation:
        return metadata.base_model_relation
    return "adapter" if metadata.library_name == "peft" else "finetune"


class CardContext(BaseModel):
    """Everything a card says. Numbers come from ``facts`` and ``records``, never prose."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metadata: CardMetadata
    repo_id: RepoId
    model_name: str | None = None
    gguf_repo_id: RepoId | None = None
    summary: str = ""
    intended_uses: str = ""
    limitations: str = ""
    training_data: str = ""
    facts: MeasuredFacts = Field(default_factory=MeasuredFacts)
    records: list[EvalRecord] = Field(default_factory=list)
    baseline: list[EvalRecord] = Field(default_factory=list)
    quants: dict[str, list[EvalRecord]] = Field(default_factory=dict)
    """The same tasks on GGUF files, by quant type (eval.tasks.gguf): a column each
    beside ``records``."""
    citations: list[str] = Field(default_factory=list)

    @property
    def name(self) -> str:
        return self.model_name or self.repo_id.split("/")[-1]


def render_model_card(
    ctx: CardContext,
    template_dir: str | Path | None = None,
    template: str | Path | None = None,
) -> str:
    """README.md of a model repo (adapter, merged fine-tune, model merge or quantized
    model, see ``card_kind``): front matter and body. ``template``: a user's template
    file rendered instead of ours (the front matter stays the facts')."""
    metadata = ctx.metadata
    if ctx.records:
        data = metadata.to_dict() | {"model-index": to_model_index(ctx.records, ctx.name)}
        try:
            metadata = CardMetadata.model_validate(data)
        except ValidationError as error:  # a score the Hub would refuse (acc = 1e308)
            raise invalid(", ".join(sorted({r.source for r in ctx.records})), error) from None
    return _render(*_chosen("model_card.md.j2", template_dir, template), ctx, metadata)


def render_gguf_card(
    ctx: CardContext,
    template_dir: str | Path | None = None,
    template: str | Path | None = None,
) -> str:
    """README.md of the GGUF repo: the quant table, verification results, the release's
    tasks on the files where they ran them (beside the unquantized model's scores), and
    usage.

    ``ctx`` describes the model that was quantized (``repo_id``), usually the merged one.
    ``template``: a user's template file rendered instead of ours (the front matter
    stays the facts').
    """
    if not ctx.gguf_repo_id or not ctx.facts.gguf_files:
        raise CardError("GGUF card needs gguf_repo_id and facts.gguf_files; export GGUF first")
    data = ctx.metadata.to_dict()
    data.pop("model-index", None)  # the scores belong to the unquantized model
    data.pop("library_name", None)  # the Hub recognises GGUF files by themselves
    data |= {"base_model": ctx.repo_id, "base_model_relation": "quantized"}
    data["tags"] = list(dict.fromkeys([*(data.get("tags") or []), "gguf", "llama.cpp"]))
    # the unquantized model's scores only beside the files' own (eval.tasks.gguf)
    gguf_ctx = ctx.model_copy(update={"baseline": []} | ({} if ctx.quants else {"records": []}))
    metadata = CardMetadata.model_validate(data)
    return _render(*_chosen("gguf_card.md.j2", template_dir, template), gguf_ctx, metadata)


def _chosen(
    ours: str, template_dir: str | Path | None, template: str | Path | None
) -> tuple[str, tuple[str, ...]]:
    """The template to render and the user's folders to search before ours: ``ours`` by
    name, or a user's own template file, its folder searched first for what it includes."""
    if template is None:
        return ours, _folders(template_dir)
    template = Path(template)
    if not template.is_file():
        raise CardError(f"{template}: card template not found")
    return template.name, _folders(template_dir, template.parent)


def _folders(*folders: str | Path | None) -> tuple[str, ...]:
    """The user's folders to search before ours, in order (absent ones left out)."""
    found = []
    for folder in folders:
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise CardError(f"{folder}: template directory not found")
        found.append(str(folder))
    return tuple(dict.fromkeys(found))


def _render(name: str, folders: tuple[str, ...], ctx: CardContext, metadata: CardMetadata) -> str:
    from jinja2 import TemplateError

    from cards.lint import lint_card

    try:
        view = _view(ctx, metadata).variables()
        body = _environment(folders).get_template(name).render(view)
    except TemplateError as error:
        raise CardError(f"{_where(error, name)}: template error: {error}") from error
    body = re.sub(r"\n{3,}", "\n\n", body.strip())
    front = yamlio.dump(metadata.to_model_card_data().to_dict())
    text = f"---\n{front}---\n\n{body}\n"
    errors = [p for p in lint_card(text, path=name) if p.severity == "error"]
    if errors:
        raise CardError(f"rendered card fails its own check: {errors[0].format()}")
    return text


def _where(error: Exception, name: str) -> str:
    """``template:line`` of a template error: a syntax error carries its place; an error
    while rendering (an undefined variable, a sandbox refusal) has it in the traceback,
    where jinja2 puts each template's line as a frame of that file."""
    filename, line = getattr(error, "filename", None), getattr(error, "lineno", None)
    if filename is None:
        frames = traceback.extract_tb(error.__traceback__)
        rendered = [f for f in frames if f.filename.endswith(".j2") and f.lineno]
        if rendered:
            filename, line = rendered[-1].filename, rendered[-1].lineno
    return f"{filename or name}{f':{line}' if line else ''}"


@cache
def _environment(folders: tuple[str, ...]):
    """One environment per list of user folders; jinja2 reloads a template whose file
    changed. The user's folders first, then ours, also under ``model-release/``."""
    from jinja2 import ChoiceLoader, FileSystemLoader, PrefixLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    import templates

    ours = FileSystemLoader(str(templates.FOLDER))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(
            [
                *(FileSystemLoader(folder) for folder in folders),
                PrefixLoader({OURS.rstrip("/"): ours}),
                ours,
            ]
        ),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters |= {"size": fact_rows.size, "count": fact_rows.count}
    return env


def _view(ctx: CardContext, metadata: CardMetadata) -> TemplateView:
    """What templates see: plain values, tables already reduced to present rows."""
    facts = ctx.facts
    harnesses = {r.harness for r in [*ctx.records, *ctx.baseline]}
    citations = unique_citations([*method_citations(facts, harnesses), *ctx.citations])
    return TemplateView(
        name=ctx.name,
        repo_id=ctx.repo_id,
        kind=card_kind(metadata),
        gguf_repo_id=ctx.gguf_repo_id,
        base_models=metadata.base_model or [],
        datasets=metadata.datasets or [],
        license=metadata.license,
        license_name=metadata.license_name,
        license_link=metadata.license_link,
        summary=ctx.summary.strip(),
        intended_uses=ctx.intended_uses.strip(),
        limitations=ctx.limitations.strip(),
        training_data=ctx.training_data.strip(),
        details=fact_rows.rows(facts, fact_rows.MODEL_DETAILS),
        lora=fact_rows.rows(facts.lora, fact_rows.LORA),
        training=fact_rows.rows(facts.training, fact_rows.TRAINING),
        sanity=fact_rows.sanity_rows(facts.sanity),
        examples=facts.sanity.smoke if facts.sanity else [],
        versions=sorted(facts.versions.items()),
        facts=facts,
        evals=_eval_table(ctx.records, ctx.baseline, _contaminated(facts), ctx.quants),
        gguf_files=_gguf_rows(facts.gguf_files),
        mmproj=facts.mmproj,
        gguf_build=facts.gguf_build,
        dequantized_base=facts.dequantized_base,
        usage=usage(facts),
        gguf_usage=gguf_usage(facts),
        history=history_table(facts.history),
        citations=citations,
    )


def _contaminated(facts: MeasuredFacts) -> set[str]:
    """The tasks the contamination check marked (over eval.contamination.max_share)."""
    checked = facts.contamination
    return {t.task for t in checked.tasks if t.marked} if checked else set()


def _eval_table(
    records: list[EvalRecord],
    baseline: list[EvalRecord],
    contaminated: set[str],
    quants: dict[str, list[EvalRecord]] | None = None,
) -> dict[str, Any]:
    """Rows of the evaluation table (a task the contamination check marked carries ⚠),
    a column per GGUF file's quant type the tasks ran on, and the n-shot mismatches to
    point out under it."""
    base = base_scores(records, baseline)
    others = {r.key: r for r in baseline}
    on_files = {
        quant.upper(): {r.key: r for r in scores} for quant, scores in (quants or {}).items()
    }
    compared = bool(base)
    cells, mismatches = [], []
    for depth, r in _grouped(records):
        score = base.get(r.key)
        if score and not score.same_shots:
            mismatches.append(
                f"{r.task} {r.metric}: {_shots(r)} here, {_shots(others[r.key])} for the base model"
            )
        cells.append(
            [
                "↳ " * depth + dataset_label(r) + (" ⚠" if r.task in contaminated else ""),
                r.metric_label,
                "" if r.n_shot is None else str(r.n_shot),
                f"{r.value:.4f}",
                "" if r.stderr is None else f"± {r.stderr:.4f}",
                *(_quant_cell(scores.get(r.key)) for scores in on_files.values()),
                *((score.cells(".4f") if score else ("", "")) if compared else ()),
                Path(r.source).name,
            ]
        )
    header = ["Task", "Metric", "n-shot", "Score", "Stderr", *on_files]
    header += ["Base model", "Difference", "Source"] if compared else ["Source"]
    harnesses = sorted({f"{r.harness} {r.harness_version or ''}".strip() for r in records})
    marked = sorted(contaminated & {r.task for r in records})
    return {
        "header": header,
        "cells": cells,
        "mismatches": mismatches,
        "harnesses": harnesses,
        "contaminated": marked,
        "quants": list(on_files),
    }


def _quant_cell(record: EvalRecord | None) -> str:
    """A score on a GGUF file; blank where the file did not give it."""
    return "" if record is None else f"{record.value:.4f}"


def _grouped(records: list[EvalRecord]) -> list[tuple[int, EvalRecord]]:
    """Records in table order, with their depth: each group's aggregate once, its
    subtasks right under it (a group whose aggregate is absent leaves them at the top)."""
    tasks = {r.task for r in records}
    children: dict[str | None, list[EvalRecord]] = {}
    for r in records:
        inside = r.group in tasks and r.group != r.task
        children.setdefault(r.group if inside else None, []).append(r)
    ordered: list[tuple[int, EvalRecord]] = []

    def visit(parent: str | None, depth: int) -> None:
        level = children.get(parent, [])
        for task in dict.fromkeys(r.task for r in level):
            ordered.extend((depth, r) for r in level if r.task == task)
            visit(task, depth + 1)

    visit(None, 0)
    return ordered


def _shots(record: EvalRecord) -> str:
    return "unknown n-shot" if record.n_shot is None else f"{record.n_shot}-shot"


def _gguf_rows(files: list[GGUFFileFacts]) -> dict[str, Any]:
    """The quant table: a column only where some file has that measurement; the loss
    columns (llama-perplexity's figures on held-out text) where a file has them, and
    "Recommended" on the smallest file under the release's limit."""
    columns = [
        ("type", "Quant type", lambda v: f"`{v}`"),
        ("bytes", "Size", fact_rows.size),
        ("sha256", "SHA-256", lambda v: f"`{v[:16]}…`"),
        ("top1_agreement", "Top-1 agreement", lambda v: f"{v:.2%}"),
        ("max_abs_diff", "Max abs logit diff", lambda v: f"{v:.4g}"),
    ]
    loss_columns = [
        ("kld_mean", "KLD mean", lambda v: f"{v:.4f}"),
        ("kld_p99", "KLD 99%", lambda v: f"{v:.4f}"),
        ("same_top1", "Same top-1", lambda v: f"{v:.1%}"),
        ("ppl_ratio", "PPL ratio", lambda v: f"{v:.3f}"),
    ]
    measured = any(f.loss is not None for f in files)
    if measured:  # the loss says more than the probe's figures: they give way to it
        columns = [c for c in columns if c[0] not in ("top1_agreement", "max_abs_diff")]
    present = [c for c in columns if any(getattr(f, c[0]) is not None for f in files)]
    rows = []
    for f in files:
        name = f"`{f.name or '(unnamed)'}`" + (" (Recommended)" if f.recommended else "")
        cells = (fmt(v) if (v := getattr(f, key)) is not None else "—" for key, _, fmt in present)
        row = [name, *cells]
        if measured:
            row += [fmt(getattr(f.loss, key)) if f.loss else "—" for key, _, fmt in loss_columns]
        rows.append(row)
    verified = any(key in ("top1_agreement", "max_abs_diff") for key, _, _ in present)
    header = ["File", *(label for _, label, _ in present)]
    header += [label for _, label, _ in loss_columns] if measured else []
    return {
        "header": header,
        "rows": rows,
        "files": files,
        "verified": verified,
        "measured": measured,
    }
