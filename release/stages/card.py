"""Stage: Model card. Renders every card of the release from the spec and the manifest.

Outputs, in the card stage's folder:
- README.md: the merged model's card (model-index from the release's scores, stored and
  produced: ``release.evaluate.scores``);
- gguf/README.md: the GGUF repo's card, when GGUF files were exported;
- adapter/README.md: the adapter repo's card, when push.adapter_repo_id is set;
- eval_results/*.yaml: the Hub's ``.eval_results/`` entries of those scores,
  which the push uploads there (a folder not hidden: the runner records no hidden file).

Every card is linted as it is rendered (``cards.render``); an error stops the stage. The
model cards (README.md, adapter/README.md) come from the release's own template when
card.template names one, the GGUF card when card.gguf_template does; the front matter
and model-index never do.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from release.evaluate.facts import EvaluateFacts
from release.gguf.facts import GGUFFacts
from release.merge.facts import AdapterFacts, MergeFacts
from release.report.card_facts import CardFacts
from release.spec.schema import ReleaseSpec
from release.stages.base import Stage, StageContext, StageOutput, StageRun


class CardStage(Stage):
    name = CardFacts.stage
    title = "Model card"
    depends_on = (AdapterFacts.stage, MergeFacts.stage, EvaluateFacts.stage, GGUFFacts.stage)

    def settings(self, spec: ReleaseSpec) -> dict[str, Any]:
        """What ``run`` hands its domain (``CardSettings``)."""
        from release.report.card_settings import CardSettings

        return CardSettings.of(spec).model_dump(mode="json")

    def input_paths(self, spec: ReleaseSpec) -> list[Path]:
        return [*spec.eval.results, *spec.card.template_files()]

    def run(self, ctx: StageContext) -> StageRun:
        from cards.evals import eval_results_files
        from cards.render import render_gguf_card, render_model_card
        from release.core.files import atomic_write_text
        from release.evaluate.scores import release_scores
        from release.hub.plan import STAGED_EVAL_RESULTS
        from release.report.card_context import card_context, has_gguf_files
        from release.report.card_settings import CardSettings

        settings = CardSettings.of(ctx.spec)  # what the key holds: the cards read only it
        templates, manifest, workspace = settings.card.template_dir, ctx.manifest, ctx.workspace
        own = settings.card.template  # the release's own model-card template, if it has one
        scores = release_scores(manifest, settings.results, ctx.spec.base_dir)
        merged = card_context(settings, manifest, "merged", scores, workspace)
        cards = {"README.md": render_model_card(merged, templates, own)}
        if has_gguf_files(manifest):
            gguf = card_context(settings, manifest, "gguf", scores, workspace)
            cards["gguf/README.md"] = render_gguf_card(gguf, templates, settings.card.gguf_template)
        if settings.adapter_repo_id:
            adapter = card_context(settings, manifest, "adapter", scores, workspace)
            cards["adapter/README.md"] = render_model_card(adapter, templates, own)
        for done, (path, text) in enumerate(cards.items(), start=1):
            atomic_write_text(ctx.out_dir / path, text)
            yield ctx.log(f"wrote {path} ({len(text):,} characters)")
            yield ctx.progress(done, len(cards), "cards", path)
        entries = eval_results_files(scores.records)
        for name, text in entries.items():
            atomic_write_text(ctx.out_dir / STAGED_EVAL_RESULTS / PurePosixPath(name).name, text)
        if entries:
            yield ctx.log(f"wrote {len(entries)} .eval_results entries")
        return StageOutput(facts=CardFacts(cards=sorted(cards)))
