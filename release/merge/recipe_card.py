"""The recipe as a card shows it: the same YAML, with every input named publicly.

A card must not leak the machine's paths (mergekit's cards do): a Hub input is named
``owner/name@commit`` (the commit it resolved to), the release's base by its repo id at
its commit, a local input by its folder's name, with the sha256 of its weights in the
inputs list, and a mask file by its file name and sha256. Steps keep their names.

The record is the card's own (``cards.measured.MergeRecipeFacts``): the merge stage
records it in the manifest and the card reads it as it is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cards.measured import MergeRecipeFacts, RecipeInput, RecipeMethod
from release.spec.recipe import MergeRecipe

if TYPE_CHECKING:
    from release.merge.recipe_inputs import Inputs, Source


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def recipe_facts(
    recipe: MergeRecipe, inputs: Inputs, base_repo_id: str | None, base_commit: str | None
) -> MergeRecipeFacts:
    public = public_inputs(inputs.sources, base_repo_id, base_commit)
    names = {ref: public[ref].name if ref in public else ref for ref in inputs.sources}
    listed = list({entry.name: entry for entry in public.values()}.values())
    from release.merge.methods import METHODS

    masks: dict[str, str] = {}
    steps = []
    for step in recipe.steps:
        plain = step.model_dump(mode="json", exclude_defaults=True)
        plain["models"] = [{**m, "model": names[m["model"]]} for m in plain["models"]]
        if step.base_model:
            plain["base_model"] = names[step.base_model]
        if step.tokenizer_source and step.tokenizer_source in names:
            plain["tokenizer_source"] = names[step.tokenizer_source]
        if step.delta_mask and step.delta_mask.file:
            masks[step.delta_mask.file.name] = _file_sha256(step.delta_mask.file)
            plain["delta_mask"]["file"] = step.delta_mask.file.name
        steps.append(plain)
    document = steps[0] if len(steps) == 1 else steps
    return MergeRecipeFacts(
        yaml=yaml.safe_dump(document, sort_keys=False, allow_unicode=True),
        inputs=listed,
        methods=[
            RecipeMethod(name=m, pretty_name=METHODS[m].pretty_name, paper=METHODS[m].paper)
            for m in recipe.methods
        ],
        # mergekit names a LoRA input base+adapter; ours names the folder, so a recipe
        # with one does not repeat in mergekit as written
        mergekit_compatible=recipe.mergekit_compatible
        and all(source.kind != "lora" for source in inputs.sources.values()),
        random_seeds=[s.random_seed for s in recipe.steps if s.random_seed is not None],
        mask_files=masks,
    )


def public_inputs(
    sources: dict[str, Source], base_repo_id: str | None, base_commit: str | None
) -> dict[str, RecipeInput]:
    """Each input the recipe names (earlier steps left out) -> how the card names it."""
    public: dict[str, RecipeInput] = {}
    taken: set[str] = set()
    for ref, source in sources.items():
        if source.kind != "step":
            public[ref] = _public(ref, source, base_repo_id, base_commit, taken)
    return public


def _public(
    ref: str, source: Source, base_repo_id: str | None, base_commit: str | None, taken: set[str]
) -> RecipeInput:
    if source.kind == "base":
        name = f"{base_repo_id}@{base_commit}" if base_repo_id and base_commit else None
        return RecipeInput(
            name=name or base_repo_id or "base",
            kind="base",
            repo_id=base_repo_id,
            revision=base_commit,
        )
    if source.commit is not None:  # from the Hub
        repo_id = ref.partition("@")[0]
        return RecipeInput(
            name=f"{repo_id}@{source.commit}",
            kind=source.kind,
            repo_id=repo_id,
            revision=source.commit,
        )
    assert source.folder is not None
    name, number = source.folder.name, 2
    while name in taken:
        name, number = f"{source.folder.name}-{number}", number + 1
    taken.add(name)
    return RecipeInput(name=name, kind=source.kind, sha256=source.sha256)
