"""The sanity eval of a merge recipe's release: the merged model beside each of its inputs.

A merge of several models is none of them, so the equivalence check of a one-adapter
release (merged == base + adapter) does not apply; the card says so. What is measured
instead, on the held-out text: the base's perplexity (read from the base-figures cache
when an earlier eval of this base filled it, ``release.evaluate.base_figures``), each
input's (a full checkpoint as it lies, a LoRA as base + LoRA through PEFT), and the
merged model's. Models load one at a time, each freed before the next: the peak is one
model, as in the one-adapter checks. The merged model then runs the chat smoke test and
keeps its reference for the GGUF checks, as there.

With eval.tasks the harness runs on each input too (``harness_models``: a LoRA as the
base with lm-eval's ``peft=``; the base as compare_base says), and ``with_task_scores``
files each input's scores beside its perplexity.

The gate (``eval.gate.no_worse_than``) holds the merge to one named input: its
perplexity may exceed that input's by ``tolerance`` (a share) at most, and each of its
eval.tasks scores may fall below the input's by ``tolerance`` at most (a rise, for a
score where lower is better).
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cards.records import EvalRecord
from release.core.errors import WorkError
from release.core.events import Event, Reporter
from release.core.quiet import held_stderr
from release.evaluate.base_figures import (
    BaseFigures,
    BaseKey,
    base_key,
    read_figures,
    write_figures,
)
from release.evaluate.checks import (
    base_probe_logits,
    judge_perplexity,
    keep,
    merged_pass,
    perplexity_pass,
    smoke_tests,
)
from release.evaluate.facts import (
    BaseFiguresFacts,
    ComparisonFacts,
    EvaluateFacts,
    InputFigures,
    InputGateFacts,
    MergeInputsFacts,
)
from release.evaluate.harness import INPUTS_HARNESS_DIR, HarnessModel
from release.evaluate.loading import (
    LoadPlan,
    load_reporting,
    release_memory,
    steady_heap,
)
from release.evaluate.settings import EvaluateSettings
from release.reference import probe as probes
from release.reference.heldout import heldout_text
from release.reference.record import ReferenceTarget, heldout_sequences
from release.spec.schema import EvalGateSpec

if TYPE_CHECKING:
    from release.merge.recipe_inputs import BaseIdentity


@dataclass(frozen=True)
class RecipeInputModel:
    """One input of the recipe as the eval loads it."""

    ref: str
    """As the recipe names it (what eval.gate.no_worse_than names)."""
    name: str
    """As the card names it (no local path)."""
    kind: Literal["base", "checkpoint", "lora"]
    folder: Path


def recipe_models(
    settings: EvaluateSettings, identity: BaseIdentity, root: Path, base_commit: str | None
) -> list[RecipeInputModel]:
    """The recipe's inputs, found where the merge stage found them (folders, Hub
    snapshots it downloaded) without checking them again, named as the card names them;
    the base first."""
    from release.merge.recipe_card import public_inputs
    from release.merge.recipe_inputs import locate_inputs

    assert settings.recipe is not None
    located = locate_inputs(settings.recipe, identity, root)
    public = public_inputs(located, identity.repo_id, base_commit)
    sources = located.items()
    base_refs = [ref for ref, source in sources if source.kind == "base"]
    base_name = public[base_refs[0]].name if base_refs else identity.repo_id or "base"
    found = [RecipeInputModel(next(iter(base_refs), ""), base_name, "base", identity.folder)]
    for ref, source in sources:
        if ref in public and source.kind != "base" and source.folder is not None:
            found.append(RecipeInputModel(ref, public[ref].name, source.kind, source.folder))
    return found


def recipe_checks(
    settings: EvaluateSettings,
    models: list[RecipeInputModel],
    merged_dir: Path,
    plan: LoadPlan,
    report: Reporter,
    *,
    base_fingerprint: str | None,
    keep_reference: ReferenceTarget | None = None,
) -> Generator[Event, None, EvaluateFacts]:
    """Perplexity of the base, of each input and of the merged model; the gate; the chat
    smoke test and the reference. ``models`` is ``recipe_models``' list, the base first."""
    from transformers import AutoTokenizer

    from release.evaluate.sanity import PROBE_PROMPTS, perplexity

    spec, remote = settings.eval, settings.trust_remote_code
    steady_heap()
    with held_stderr():
        tokenizer = AutoTokenizer.from_pretrained(merged_dir, trust_remote_code=remote)
    heldout = heldout_text(spec.heldout_text)
    text_name = heldout.name
    sequences = heldout_sequences(tokenizer, heldout, probes.PROBE)
    base, *inputs = models
    key = None
    if base_fingerprint is not None:  # the base as it lies: a recipe adds no tokens
        probe_ids = [tokenizer(prompt).input_ids for prompt in PROBE_PROMPTS]
        key = base_key(base_fingerprint, sequences, probe_ids, plan.dtype, plan.device)
    base_perplexity, cached = yield from _base_perplexity(
        remote, base.folder, plan, tokenizer, sequences, key, report
    )
    figures = [InputFigures(name=base.name, kind="base", perplexity=round(base_perplexity, 4))]
    for model in inputs:
        yield report.log(f"loading {model.name} ({model.kind}) on {plan.device}")
        loaded = yield from _load_input(model, base.folder, plan, remote, report)
        passes = perplexity(loaded, sequences)
        value = yield from perplexity_pass(report, f"perplexity: {model.name}", passes, sequences)
        del loaded, passes  # the pass holds the model too: both go before the next loads
        release_memory()
        figures.append(InputFigures(name=model.name, kind=model.kind, perplexity=round(value, 4)))

    yield report.log(f"loading the merged model on {plan.device}")
    merged = yield from load_reporting(
        report, "loading the merged model", merged_dir, plan, trust_remote_code=remote
    )
    merged_perplexity, kept = yield from merged_pass(merged, sequences, keep_reference, report)
    perplexity_facts = judge_perplexity(
        spec, text_name, sequences, base_perplexity, merged_perplexity, changed_by="the merge"
    )
    by_ref = {model.ref: figure for model, figure in zip(models, figures, strict=True)}
    gate = no_worse_than(spec.gate, by_ref, merged_perplexity) if spec.gate else None
    smoke = yield from smoke_tests(merged, tokenizer, spec, report)
    reference = yield from keep(merged, tokenizer, plan, keep_reference, report, kept)
    return EvaluateFacts(
        device=plan.device,
        perplexity=perplexity_facts,
        base_figures=None if key is None else BaseFiguresFacts(key=key.digest, cached=cached),
        smoke=smoke,
        reference=reference,
        merge_inputs=MergeInputsFacts(models=figures, gate=gate),
    )


def no_worse_than(
    gate: EvalGateSpec, by_ref: dict[str, InputFigures], merged: float
) -> InputGateFacts:
    """The gate's facts, or the one-line refusal naming the input, its figure and the limit."""
    figure = by_ref[gate.no_worse_than]
    limit = figure.perplexity * (1 + gate.tolerance)
    if merged > limit:
        raise WorkError(
            f"the merge is worse than its input {gate.no_worse_than}: perplexity "
            f"{merged:.2f} on the held-out text, the input's {figure.perplexity:.2f} "
            f"(limit {limit:.2f}: +{gate.tolerance:.0%}, eval.gate.no_worse_than)",
            hint="change the recipe's weights, or raise eval.gate.tolerance",
        )
    return InputGateFacts(
        input=gate.no_worse_than,
        name=figure.name,
        input_perplexity=figure.perplexity,
        merged_perplexity=round(merged, 4),
        tolerance=gate.tolerance,
        limit=round(limit, 4),
        passed=True,
    )


def harness_models(models: list[RecipeInputModel]) -> dict[str, HarnessModel]:
    """The recipe's inputs as the harness runs them, by ref, each into its own folder: a
    checkpoint as it lies, a LoRA on the base (``models``' first) through lm-eval's
    ``peft=``. The base is not among them: it runs as eval.tasks.compare_base says."""
    base, *inputs = models
    return {
        model.ref: HarnessModel(
            base.folder if model.kind == "lora" else model.folder,
            model.name,
            f"{INPUTS_HARNESS_DIR}/{number}-{re.sub(r'[^A-Za-z0-9._-]+', '_', model.name)}",
            peft=model.folder if model.kind == "lora" else None,
        )
        for number, model in enumerate(inputs, start=1)
    }


def with_task_scores(
    inputs: MergeInputsFacts,
    models: list[RecipeInputModel],
    scores: dict[str, list[EvalRecord]],
    merged: list[EvalRecord],
    gate: EvalGateSpec | None,
) -> MergeInputsFacts:
    """``inputs`` with each model's eval.tasks ``scores`` (by ref) beside its perplexity,
    and the gate's input held to them: ``merged`` (the merged model's produced scores)
    may fall below its scores by ``gate.tolerance`` at most, else one line naming the
    input and the scores that fell."""
    figures = [
        figure.model_copy(update={"results": scores.get(model.ref, [])})
        for model, figure in zip(models, inputs.models, strict=True)
    ]
    if gate is None or inputs.gate is None:
        return inputs.model_copy(update={"models": figures})
    from release.evaluate.gate import compare

    theirs = scores.get(gate.no_worse_than, [])
    tolerance = gate.tolerance
    verdict = compare(merged, theirs, max_task_drop=tolerance, max_average_drop=tolerance)
    if not verdict.passed:
        raise WorkError(
            f"the merge is worse than its input {gate.no_worse_than} on eval.tasks: "
            f"{'; '.join(verdict.failures)} (at most -{tolerance:.0%}, eval.gate.no_worse_than)",
            hint="change the recipe's weights, or raise eval.gate.tolerance",
        )
    compared = [ComparisonFacts.model_validate(vars(c)) for c in verdict.compared]
    held = inputs.gate.model_copy(update={"compared": compared})
    return inputs.model_copy(update={"models": figures, "gate": held})


def _load_input(
    model: RecipeInputModel, base_dir: Path, plan: LoadPlan, remote: bool, report: Reporter
) -> Generator[Event, None, Any]:
    """A checkpoint as it lies; a LoRA as base + LoRA, unmerged, as PEFT's users load it."""
    what = f"loading {model.name}"
    folder = model.folder if model.kind != "lora" else base_dir
    loaded = yield from load_reporting(report, what, folder, plan, trust_remote_code=remote)
    if model.kind != "lora":
        return loaded
    from peft import PeftModel

    with held_stderr():
        return PeftModel.from_pretrained(loaded, model.folder).eval()


def _base_perplexity(
    remote: bool,
    base_dir: Path,
    plan: LoadPlan,
    tokenizer,
    sequences: list[list[int]],
    key: BaseKey | None,
    report: Reporter,
) -> Generator[Event, None, tuple[float, bool]]:
    """The base's perplexity, from the cache under ``key`` or measured (with its probe
    logits, so the cache entry serves a one-adapter release of this base too); whether
    it was cached."""
    from release.evaluate.sanity import perplexity

    figures = read_figures(key) if key is not None else None
    if figures is not None:
        yield report.log(
            f"the base's perplexity ({figures.perplexity:.2f}): cached by an earlier eval "
            f"of this base (key {key.digest[:16]}…), not computed again"
        )
        return figures.perplexity, True
    yield report.log(f"loading the base on {plan.device}")
    base = yield from load_reporting(
        report, "loading the base", base_dir, plan, trust_remote_code=remote
    )
    passes = perplexity(base, sequences)
    value = yield from perplexity_pass(report, "perplexity: base", passes, sequences)
    if key is not None:
        bare = yield from base_probe_logits(base, tokenizer, report)
        write_figures(key, BaseFigures(value, bare))
    del base
    release_memory()
    return value, False
