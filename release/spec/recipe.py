"""A merge recipe: several models into one, in mergekit's own YAML vocabulary.

The recipe sits in release.yaml under ``merge.recipe`` (or in a file it names). A
mergekit user reads it at once: ``merge_method``, ``base_model``, ``models`` with their
``parameters``, ``parameters`` shared by all, ``dtype``/``out_dtype``,
``tokenizer_source``; a parameter is a number, a gradient across the layers (a list,
interpolated as mergekit does) or a list of ``{filter, value}`` conditions matched on
the tensor's name (``self_attn``, ``mlp``). On an architecture mergekit supports, the
same YAML (one step, no ``delta_mask``) repeats the merge there.

What mergekit's single file has no word for, the recipe adds (mergekit ignores unknown
keys, so a recipe that uses them is not mergekit-compatible, and the card says so):

- several steps (a list; mergekit-multi's idea): a later step names an earlier one's
  ``name`` as a model or its base_model, and the whole chain is streamed tensor by
  tensor without writing the intermediate models;
- ``delta_mask``: a per-tensor weight file (safetensors, values in [0, 1]) and per-layer
  factors, multiplied into each input's difference from the step's base;
- ``random_seed``: the seed of the random methods (dare_*, della*), recorded with the
  recipe (mergekit takes it on the command line).

A model is named by a local folder (a full fine-tuned checkpoint, or a PEFT LoRA adapter
applied to the release's base) or by a Hub id with a revision (``owner/name@rev``); the
release's base is ``base.repo_id`` or ``base.path`` as release.yaml gives them. What
each method takes is checked by the method table (``release.merge.methods``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from release.spec.paths import SpecPath

Scalar = bool | float
Gradient = Annotated[list[float], Field(min_length=1)]


class ConditionalParameter(BaseModel):
    """A value for the tensors whose name contains ``filter`` (all tensors without one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    filter: str | None = None
    value: Scalar | Gradient


ParameterSetting = Scalar | Gradient | list[ConditionalParameter] | ConditionalParameter
Dtype = Literal["float32", "bfloat16", "float16"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecipeModel(_Record):
    """One input of a step and its parameters (``weight``, ``density``…)."""

    model: str = Field(min_length=1)
    parameters: dict[str, ParameterSetting] = Field(default_factory=dict)


class DeltaMask(_Record):
    """What multiplies each input's difference from the step's base, per element."""

    file: SpecPath | None = Field(
        default=None,
        description="safetensors of values in [0, 1], named and shaped as the base's "
        "tensors (e.g. 1 - normalized Fisher importance); tensors it lacks keep 1.",
    )
    layer_factors: list[float] | None = Field(
        default=None,
        description="One factor per layer (layers.N); tensors outside the layers keep 1.",
    )

    @model_validator(mode="after")
    def _something(self) -> DeltaMask:
        if self.file is None and not self.layer_factors:
            raise ValueError("give delta_mask.file, delta_mask.layer_factors, or both")
        return self


class MergeStep(_Record):
    """One merge: mergekit's MergeConfiguration (``models`` form) plus our extensions."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    merge_method: str
    base_model: str | None = None
    models: list[RecipeModel] = Field(min_length=1)
    parameters: dict[str, ParameterSetting] = Field(default_factory=dict)
    dtype: Dtype | None = None
    out_dtype: Dtype | None = None
    tokenizer_source: str | None = None
    random_seed: int | None = Field(default=None, ge=0)
    delta_mask: DeltaMask | None = None

    @model_validator(mode="after")
    def _mask_needs_a_base(self) -> MergeStep:
        if self.delta_mask is not None and self.base_model is None:
            raise ValueError("delta_mask scales differences from base_model: give base_model")
        return self

    @property
    def mergekit_compatible(self) -> bool:
        return self.delta_mask is None


class MergeRecipe(_Record):
    """The steps in order; the last one's result is the release."""

    steps: list[MergeStep] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_or_several(cls, value):
        """A single mapping is a one-step recipe; a list is several steps."""
        if isinstance(value, list):
            return {"steps": value}
        if isinstance(value, dict) and "steps" not in value:
            return {"steps": [value]}
        return value

    @field_validator("steps")
    @classmethod
    def _names(cls, steps: list[MergeStep]) -> list[MergeStep]:
        seen: set[str] = set()
        for number, step in enumerate(steps):
            if len(steps) > 1 and step.name is None and number < len(steps) - 1:
                raise ValueError(f"step {number + 1} needs a name for a later step to use it")
            if step.name in seen:
                raise ValueError(f"two steps are named {step.name!r}")
            if step.name:
                seen.add(step.name)
        return steps

    @property
    def mergekit_compatible(self) -> bool:
        return len(self.steps) == 1 and self.steps[0].mergekit_compatible

    @property
    def input_names(self) -> list[str]:
        """The models the steps read, as the recipe names them, earlier steps left out."""
        steps = {step.name for step in self.steps}
        refs = [
            ref for step in self.steps for ref in [*(m.model for m in step.models), step.base_model]
        ]
        return [ref for ref in dict.fromkeys(refs) if ref and ref not in steps]

    def key(self) -> dict:
        """The recipe as a stage's key holds it: a mask file by its name (its bytes are
        keyed as the stage's input, by content), never by the machine's path."""
        plain = self.model_dump(mode="json")
        for step in plain["steps"]:
            if (step.get("delta_mask") or {}).get("file"):
                step["delta_mask"]["file"] = Path(step["delta_mask"]["file"]).name
        return plain

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(step.merge_method for step in self.steps))

    @property
    def dtype(self) -> str | None:
        """The dtype the release is written in (the last step's out_dtype or dtype)."""
        last = self.steps[-1]
        return last.out_dtype or last.dtype


def recipe_yaml_loc(loc: tuple, data: dict) -> tuple:
    """An error's path in the YAML as written: a one-step recipe is a mapping (no
    ``steps.0``), several steps a list (no ``steps``); other paths as they are."""
    if loc[:3] != ("merge", "recipe", "steps"):
        return loc
    recipe = (data.get("merge") or {}).get("recipe") if isinstance(data, dict) else None
    rest = loc[3:]
    if isinstance(recipe, dict) and "steps" not in recipe:
        rest = rest[1:]
    return ("merge", "recipe", *rest)
