"""Merge recipes: the YAML read into records, the inputs checked before any byte is
written, and seed 003's shape of recipe (LoRAs averaged in delta space, masked and
dampened per layer onto the base, then slerp against another LoRA) checked against the
paper formulas computed in float64 on PEFT's own merges of each adapter."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from release.core.errors import InputError, SpecError, WorkError
from release.merge.recipe_inputs import (
    BaseIdentity,
    evaluate_setting,
    layer_position,
    resolve_inputs,
)
from release.merge.recipe_stream import merge_recipe
from release.spec.recipe import ConditionalParameter, MergeRecipe
from release.spec.schema import parse_spec
from tests.support.lora_models import load_folder, make_adapter


def _run(recipe: MergeRecipe, base: Path, out: Path, **options) -> tuple[list, object]:
    inputs = resolve_inputs(recipe, BaseIdentity(folder=base, path=base), base.parent)
    out.mkdir()
    options.setdefault("dtype", recipe.dtype or "auto")
    steps, generator = [], merge_recipe(recipe, inputs, out, **options)
    while True:
        try:
            steps.append(next(generator))
        except StopIteration as done:
            return steps, done.value


def _recipe(text: str) -> MergeRecipe:
    return MergeRecipe.model_validate(yaml.safe_load(text))


# --- the YAML ----------------------------------------------------------------------------


def test_gradients_and_filters_resolve_as_mergekit_does():
    gradient = [0.0, 0.5, 1.0]
    assert evaluate_setting(gradient, "x", 0.25) == pytest.approx(0.25)
    assert evaluate_setting(gradient, "x", 1.0) == 1.0
    conditions = [
        ConditionalParameter(filter="self_attn", value=[0.0, 1.0]),
        ConditionalParameter(value=0.3),
    ]
    assert evaluate_setting(conditions, "model.layers.1.self_attn.q_proj.weight", 1.0) == 1.0
    assert evaluate_setting(conditions, "model.layers.1.mlp.up_proj.weight", 1.0) == 0.3
    assert layer_position("model.layers.3.mlp.up_proj.weight", 7) == 0.5
    assert layer_position("model.embed_tokens.weight", 7) == 0.0


def test_recipe_in_release_yaml_is_located(tmp_path):
    text = (
        "name: m\nversion: 1.0.0\nbase: {path: base}\nadapter: {path: a}\nmerge:\n"
        "  recipe:\n    merge_method: ties\n    modles: []\n"
    )
    with pytest.raises(SpecError) as error:
        parse_spec(text, tmp_path / "release.yaml")
    problems = "\n".join(error.value.problems)
    assert "release.yaml:8: merge.recipe.modles: unknown key" in problems
    several = text.replace("    merge_method", "    - merge_method").replace(
        "    modles", "      modles"
    )
    with pytest.raises(SpecError) as error:
        parse_spec(several, tmp_path / "release.yaml")
    assert "release.yaml:8: merge.recipe.0.modles: unknown key" in "\n".join(error.value.problems)


def test_recipe_file_named_by_release_yaml(tmp_path):
    (tmp_path / "recipe.yaml").write_text(
        "merge_method: slerp\nbase_model: base\nmodels: [{model: base}, {model: other}]\n"
        "parameters: {t: 0.3}\n"
    )
    text = "name: m\nversion: 1.0.0\nbase: {path: base}\nadapter: {path: a}\n"
    spec = parse_spec(text + "merge: {recipe: recipe.yaml}\n", tmp_path / "release.yaml")
    assert spec.merge.recipe is not None
    assert spec.merge.recipe.steps[0].parameters == {"t": 0.3}
    assert spec.merge.recipe.mergekit_compatible
    assert spec.merge.recipe.input_names == ["base", "other"]
    # a problem in the recipe file names the recipe file's line
    (tmp_path / "recipe.yaml").write_text("merge_method: ties\nmodels:\n  - model: a\n    w: 1\n")
    with pytest.raises(SpecError) as error:
        parse_spec(text + "merge: {recipe: recipe.yaml}\n", tmp_path / "release.yaml")
    assert error.value.problems == [f"{tmp_path / 'recipe.yaml'}:4: models.0.w: unknown key"]


def test_the_gate_names_an_input_of_the_recipe(tmp_path):
    text = "name: m\nversion: 1.0.0\nbase: {path: base}\nadapter: {path: a}\n"
    recipe = "merge:\n  recipe: {merge_method: linear, models: [{model: x}, {model: y}]}\n"
    with pytest.raises(SpecError) as error:
        parse_spec(text + "eval:\n  gate: {no_worse_than: z}\n" + recipe, tmp_path / "r.yaml")
    assert error.value.problems == [
        f"{tmp_path / 'r.yaml'}:6: eval: gate.no_worse_than: 'z' is not a model of "
        "merge.recipe; use one of x, y"
    ]
    with pytest.raises(SpecError) as error:
        parse_spec(text + "eval:\n  gate: {no_worse_than: x}\n", tmp_path / "r.yaml")
    assert "there is no recipe; leave eval.gate out" in error.value.problems[0]


def test_a_recipe_needs_no_adapter(tmp_path):
    head = "name: m\nversion: 1.0.0\nbase: {path: base}\n"
    recipe = "merge:\n  recipe: {merge_method: linear, models: [{model: x}, {model: y}]}\n"
    assert parse_spec(head + recipe, tmp_path / "r.yaml").adapter is None
    with pytest.raises(SpecError) as error:
        parse_spec(head + "adapter: null\n", tmp_path / "r.yaml")
    assert error.value.problems == [
        f"{tmp_path / 'r.yaml'}:4: adapter: required: give adapter.path or adapter.repo_id, "
        "or merge.recipe (the models)"
    ]
    with pytest.raises(SpecError) as error:
        parse_spec(head + recipe + "push: {adapter_repo_id: me/lora}\n", tmp_path / "r.yaml")
    assert error.value.problems == [
        f"{tmp_path / 'r.yaml'}:6: push: adapter_repo_id: this release has no adapter "
        "(merge.recipe names its models); leave push.adapter_repo_id out"
    ]


def test_spec_check_names_a_recipe_input_that_is_not_there(tmp_path, capsys):
    """A local input or mask file that is not there: one line at its own line (in
    release.yaml or the recipe file it names); a Hub id is the merge stage's to find."""
    from release.cli import main

    (tmp_path / "base").mkdir()
    (tmp_path / "adapters" / "a").mkdir(parents=True)
    head = "name: m\nversion: 1.0.0\nbase: {path: base}\nmerge:\n"
    inline = tmp_path / "release.yaml"
    inline.write_text(
        head + "  recipe:\n    merge_method: linear\n    models:\n      - {model: adapters/a}\n"
        "      - {model: org/model@main}\n      - {model: adapters/b}\n"
    )
    chained = tmp_path / "chained.yaml"
    chained.write_text(head + "  recipe: recipe.yaml\n")
    (tmp_path / "recipe.yaml").write_text(
        "- name: soup\n  merge_method: task_arithmetic\n  base_model: base\n"
        "  models: [{model: adapters/a, parameters: {weight: 1}}]\n"
        "  delta_mask: {file: keep.safetensors}\n"
        "- {merge_method: slerp, base_model: soup, models: [{model: soup}, {model: org/x}]}\n"
    )
    lines = []
    for spec in (inline, chained):
        assert main(["spec", "check", str(spec)]) == 2
        lines.append(capsys.readouterr().err.strip())
    assert lines == [
        f"error: {inline}:10: merge.recipe.models[2].model: {tmp_path / 'adapters' / 'b'} "
        "does not exist (fix the path (relative to release.yaml), or name a Hub repo as "
        "owner/name@revision)",
        f"error: {tmp_path / 'recipe.yaml'}:5: merge.recipe[0].delta_mask.file: "
        f"{tmp_path / 'keep.safetensors'} does not exist (fix the path (relative to "
        "release.yaml))",
    ]
    (tmp_path / "adapters" / "b").mkdir()
    (tmp_path / "keep.safetensors").write_bytes(b"")
    for spec in (inline, chained):
        assert main(["spec", "check", str(spec)]) == 0, capsys.readouterr().err


def test_the_gate_refuses_a_merge_worse_than_its_input():
    from release.evaluate.facts import InputFigures
    from release.evaluate.recipe_checks import no_worse_than
    from release.spec.schema import EvalGateSpec

    figures = {"adapters/heal": InputFigures(name="heal", kind="lora", perplexity=10.0)}
    gate = EvalGateSpec(no_worse_than="adapters/heal", tolerance=0.02)
    assert no_worse_than(gate, figures, 10.2).limit == pytest.approx(10.2)
    with pytest.raises(WorkError) as error:
        no_worse_than(gate, figures, 10.21)
    assert error.value.message == (
        "the merge is worse than its input adapters/heal: perplexity 10.21 on the held-out "
        "text, the input's 10.00 (limit 10.20: +2%, eval.gate.no_worse_than)"
    )


def test_the_gate_holds_the_merge_to_the_input_s_benchmark_scores(tmp_path):
    """eval.tasks: each score of the merged model may fall below the named input's by
    the tolerance at most (a rise, where lower is better); the scores compared are
    recorded beside the perplexity gate's."""
    from cards.records import EvalRecord
    from release.evaluate.facts import InputFigures, InputGateFacts, MergeInputsFacts
    from release.evaluate.recipe_checks import RecipeInputModel, with_task_scores
    from release.spec.schema import EvalGateSpec

    def scores(acc: float, ppl: float) -> list[EvalRecord]:
        common = {"harness": "lm-eval", "source": "results.json"}
        return [
            EvalRecord(task="mr_choice", metric="acc", value=acc, **common),
            EvalRecord(task="mr_perplexity", metric="word_perplexity", value=ppl, **common),
        ]

    models = [
        RecipeInputModel("", "org/base", "base", tmp_path),
        RecipeInputModel("adapters/heal", "heal", "lora", tmp_path / "heal"),
    ]
    figures = [InputFigures(name=m.name, kind=m.kind, perplexity=10.0) for m in models]
    held = InputGateFacts(
        input="adapters/heal",
        name="heal",
        input_perplexity=10.0,
        merged_perplexity=10.0,
        tolerance=0.1,
        limit=11.0,
        passed=True,
    )
    inputs = MergeInputsFacts(models=figures, gate=held)
    gate = EvalGateSpec(no_worse_than="adapters/heal", tolerance=0.1)
    theirs = {"adapters/heal": scores(0.5, 20.0)}
    passed = with_task_scores(inputs, models, theirs, scores(0.46, 21.0), gate)
    assert [m.results for m in passed.models] == [[], scores(0.5, 20.0)]
    drops = {c.task: round(c.drop, 6) for c in passed.gate.compared}
    assert drops == {"mr_choice": 0.08, "mr_perplexity": 0.05}
    with pytest.raises(WorkError) as error:
        with_task_scores(inputs, models, theirs, scores(0.5, 22.5), gate)
    assert error.value.message == (
        "the merge is worse than its input adapters/heal on eval.tasks: mr_perplexity "
        "word_perplexity 20 → 22.5 (-12%) (at most -10%, eval.gate.no_worse_than)"
    )


# --- inputs -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loras(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    """Five LoRAs on the tiny Llama (seed 003's four and the one slerp heals with)."""
    root = tmp_path_factory.mktemp("recipe-loras")
    targets = ["q_proj", "v_proj", "up_proj"]
    return {
        name: make_adapter(tiny_llama_dir, root / name, seed=seed, target_modules=targets)
        for seed, name in enumerate(["a", "b", "c", "d", "heal"], start=11)
    }


@pytest.fixture(scope="module")
def fisher_mask(tiny_llama_dir, tmp_path_factory) -> Path:
    """1 - normalized importance for two tensors, as seed 003's mask file has it."""
    base = load_folder(tiny_llama_dir)
    generator = torch.Generator().manual_seed(5)
    names = ["model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight"]
    mask = {name: torch.rand(base[name].shape, generator=generator) for name in names}
    path = tmp_path_factory.mktemp("mask") / "keep.safetensors"
    save_file(mask, path)
    return path


def _seed003(loras: dict[str, Path], base: Path, mask: Path) -> str:
    four = "".join(f"    - {{model: {loras[n]}, parameters: {{weight: 1.0}}}}\n" for n in "abcd")
    return (
        "- name: soup\n  merge_method: task_arithmetic\n"
        f"  base_model: {base}\n  models:\n{four}"
        "  parameters: {normalize: true, lambda: 0.3}\n"
        f"  delta_mask: {{file: {mask}, layer_factors: [1.0, 0.6]}}\n"
        "- merge_method: slerp\n  base_model: soup\n"
        f"  models: [{{model: soup}}, {{model: {loras['heal']}}}]\n"
        "  parameters: {t: 0.3}\n  out_dtype: float32\n"
    )


def _peft_delta(base_dir: Path, adapter: Path) -> dict[str, torch.Tensor]:
    """What PEFT's merge adds to each tensor, in float64, merged in float32."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    base = {k: v.clone().double() for k, v in model.state_dict().items()}
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload().state_dict()
    return {k: merged[k].double() - base[k] for k in base}


def _slerp64(t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Shoemake's slerp of the tensors as two vectors, float64."""
    x, y = a.reshape(1, -1), b.reshape(1, -1)
    dot = ((x / x.norm(dim=1, keepdim=True)) * (y / y.norm(dim=1, keepdim=True))).sum(1)
    dot = dot.clamp(-1, 1).unsqueeze(1)
    theta = torch.acos(dot)
    linear = dot.abs() > 0.9995
    ca = torch.where(linear, 1 - t, torch.sin((1 - t) * theta) / torch.sin(theta))
    cb = torch.where(linear, t, torch.sin(t * theta) / torch.sin(theta))
    return (ca * x + cb * y).reshape(a.shape)


def test_seed003_recipe_equals_the_formulas(tiny_llama_dir, loras, fisher_mask, tmp_path):
    recipe = _recipe(_seed003(loras, tiny_llama_dir, fisher_mask))
    assert not recipe.mergekit_compatible
    steps, result = _run(recipe, tiny_llama_dir, tmp_path / "out")
    ours = load_folder(tmp_path / "out")
    base = {k: v.double() for k, v in load_folder(tiny_llama_dir).items()}
    deltas = {n: _peft_delta(tiny_llama_dir, loras[n]) for n in loras}
    mask = {k: v.double() for k, v in load_folder(fisher_mask.parent).items()}
    assert len(steps) == len(base) and steps[-1].done == steps[-1].total
    assert result.tensors_merged == sum(
        1 for k in base if any(deltas[n][k].abs().max() > 0 for n in loras)
    )
    worst = 0.0
    for name, weight in base.items():
        layer = 1 if ".layers.1." in name else 0
        factor = mask.get(name, torch.ones_like(weight)) * (0.6 if layer else 1.0)
        soup = weight + 0.3 * factor * sum(deltas[n][name] for n in "abcd") / 4
        healed = weight + deltas["heal"][name]
        expected = soup if torch.equal(soup, healed) else _slerp64(0.3, soup, healed)
        if not any(deltas[n][name].abs().max() > 0 for n in loras):
            expected = weight  # untouched by every LoRA: the base's bytes
        error = (ours[name].double() - expected).abs().max().item()
        worst = max(worst, error / (expected.abs().max().item() or 1))
    assert worst < 1e-6  # float32 arithmetic against float64: a few float32 ulps


def test_same_recipe_same_bytes(tiny_llama_dir, loras, fisher_mask, tmp_path):
    recipe = _recipe(_seed003(loras, tiny_llama_dir, fisher_mask))
    _, first = _run(recipe, tiny_llama_dir, tmp_path / "one")
    _, second = _run(recipe, tiny_llama_dir, tmp_path / "two")
    assert first.sha256 == second.sha256
    for name, digest in first.sha256.items():
        assert hashlib.sha256((tmp_path / "one" / name).read_bytes()).hexdigest() == digest


def test_dare_is_seeded(tiny_llama_dir, loras, tmp_path):
    text = (
        f"merge_method: dare_ties\nbase_model: {tiny_llama_dir}\nrandom_seed: 3\nmodels:\n"
        + "".join(
            f"  - {{model: {loras[n]}, parameters: {{weight: 0.5, density: 0.5}}}}\n" for n in "ab"
        )
    )
    _, one = _run(_recipe(text), tiny_llama_dir, tmp_path / "one")
    _, two = _run(_recipe(text), tiny_llama_dir, tmp_path / "two")
    _, other = _run(_recipe(text.replace("seed: 3", "seed: 4")), tiny_llama_dir, tmp_path / "x")
    assert one.sha256 == two.sha256 != other.sha256
    with pytest.raises(InputError, match="random_seed"):
        resolve_inputs(
            _recipe(text.replace("random_seed: 3\n", "")),
            BaseIdentity(folder=tiny_llama_dir, path=tiny_llama_dir),
            tmp_path,
        )


def _refused(text: str, base: Path, root: Path) -> str:
    with pytest.raises(InputError) as error:
        resolve_inputs(_recipe(text), BaseIdentity(folder=base, path=base), root)
    return str(error.value)


def test_bad_recipes_are_refused_before_writing(tiny_llama_dir, loras, fisher_mask, tmp_path):
    base = tiny_llama_dir
    a, b = loras["a"], loras["b"]
    assert "ties has no parameter 'densty'" in _refused(
        f"merge_method: ties\nbase_model: {base}\nmodels: [{{model: {a}, parameters: "
        "{weight: 1, densty: 0.5}}]",
        base,
        tmp_path,
    )
    assert "weight: missing" in _refused(
        f"merge_method: task_arithmetic\nbase_model: {base}\nmodels: [{{model: {a}}}]",
        base,
        tmp_path,
    )
    assert "sum to 0" in _refused(
        f"merge_method: linear\nmodels: [{{model: {a}, parameters: {{weight: 1}}}}, "
        f"{{model: {b}, parameters: {{weight: -1}}}}]",
        base,
        tmp_path,
    )
    assert "outside [0.0, 1.0]" in _refused(
        f"merge_method: slerp\nbase_model: {base}\nmodels: [{{model: {base}}}, {{model: {a}}}]\n"
        "parameters: {t: 1.5}",
        base,
        tmp_path,
    )
    assert "slerp takes exactly 2 models" in _refused(
        f"merge_method: slerp\nbase_model: {base}\nmodels: [{{model: {a}}}]\n"
        "parameters: {t: 0.5}",
        base,
        tmp_path,
    )
    bad_mask = tmp_path / "bad.safetensors"
    save_file({"model.norm.weight": torch.full((64,), 1.5)}, bad_mask)
    assert "outside [0, 1]" in _refused(
        f"merge_method: task_arithmetic\nbase_model: {base}\nmodels: [{{model: {a}, "
        f"parameters: {{weight: 1}}}}]\ndelta_mask: {{file: {bad_mask}}}",
        base,
        tmp_path,
    )


def test_a_checkpoint_of_another_model_is_refused(tiny_llama_dir, smollm2_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer

    from tests.support.models import make_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    other = make_tiny_llama(tmp_path / "other", tokenizer, intermediate_size=96)
    message = _refused(
        f"merge_method: linear\nmodels: [{{model: {tiny_llama_dir}, parameters: {{weight: 1}}}}, "
        f"{{model: {other}, parameters: {{weight: 1}}}}]",
        tiny_llama_dir,
        tmp_path,
    )
    assert "the base's is [" in message and str(other) in message


def test_tokenizers_that_differ_need_a_choice(tiny_llama_dir, loras, tmp_path):
    other = tmp_path / "other-tokenizer"
    other.mkdir()
    for path in loras["a"].iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    config = json.loads((tiny_llama_dir / "tokenizer_config.json").read_text())
    config["chat_template"] = "{{ messages }}"
    (other / "tokenizer_config.json").write_text(json.dumps(config))
    text = (
        f"merge_method: task_arithmetic\nbase_model: {tiny_llama_dir}\nmodels: [{{model: {other}, "
        f"parameters: {{weight: 1}}}}, {{model: {loras['b']}, parameters: {{weight: 1}}}}]"
    )
    # one input brings its own template, the other none: that one ships
    inputs = resolve_inputs(
        _recipe(text), BaseIdentity(folder=tiny_llama_dir, path=tiny_llama_dir), tmp_path
    )
    assert inputs.tokenizer_from == str(other)
    twin = tmp_path / "twin"
    twin.mkdir()
    for path in loras["b"].iterdir():
        (twin / path.name).write_bytes(path.read_bytes())
    config["chat_template"] = "{{ other }}"
    (twin / "tokenizer_config.json").write_text(json.dumps(config))
    clash = text.replace(str(loras["b"]), str(twin))
    assert "tokenizers or chat templates differ" in _refused(clash, tiny_llama_dir, tmp_path)
    chosen = _recipe(clash + f"\ntokenizer_source: {twin}")
    inputs = resolve_inputs(
        chosen, BaseIdentity(folder=tiny_llama_dir, path=tiny_llama_dir), tmp_path
    )
    assert inputs.tokenizer_from == str(twin)


def test_card_shows_the_recipe_without_local_paths(tiny_llama_dir, loras, fisher_mask, tmp_path):
    from cards.render import render_model_card
    from release.core.manifest import Manifest, StageRecord
    from release.evaluate.scores import ReleaseScores
    from release.merge.facts import MergeFacts
    from release.merge.recipe_card import recipe_facts
    from release.report.card_context import card_context
    from release.report.card_settings import CardSettings

    recipe = _recipe(_seed003(loras, tiny_llama_dir, fisher_mask))
    identity = BaseIdentity(folder=tiny_llama_dir, repo_id="org/base", path=tiny_llama_dir)
    inputs = resolve_inputs(recipe, identity, tiny_llama_dir.parent)
    facts = recipe_facts(recipe, inputs, "org/base", "c0ffee")
    spec = parse_spec(
        "name: merged\nversion: 1.0.0\nbase: {repo_id: org/base}\nadapter: {path: a}\n"
        "eval: {enabled: false}\npush: {repo_id: me/merged}\n",
        tmp_path / "release.yaml",
    )
    manifest = Manifest(name="merged", version="1.0.0")
    manifest.stages["merge"] = StageRecord(
        key="k", finished_at="t", seconds=0, facts=MergeFacts(recipe=facts).model_dump(mode="json")
    )
    settings = CardSettings.of(spec)
    card = render_model_card(
        card_context(settings, manifest, "merged", ReleaseScores(), spec.workspace)
    )
    assert "base_model: org/base" in card and "base_model_relation: merge" in card
    assert "- merge\n" in card and "- mergekit\n" not in card  # delta_mask: not mergekit's
    assert "## Merge recipe" in card
    shown = yaml.safe_load(card.split("```yaml\n")[1].split("```")[0])
    assert shown[0]["base_model"] == "org/base@c0ffee"
    assert [m["model"] for m in shown[0]["models"]] == ["a", "b", "c", "d"]
    assert shown[0]["delta_mask"]["file"] == "keep.safetensors"
    assert shown[1]["models"] == [{"model": "soup"}, {"model": "heal"}]
    digest = hashlib.sha256((loras["a"] / "adapter_model.safetensors").read_bytes()).hexdigest()
    assert f"| `a` | LoRA adapter on the base | `{digest}` |" in card
    assert str(tmp_path) not in card and str(tiny_llama_dir) not in card
    assert str(loras["a"].parent) not in card
    assert "@inproceedings{ilharco2023taskarithmetic" in card
    assert "@inproceedings{shoemake1985slerp" in card


def test_merge_stage_runs_the_recipe(tiny_llama_dir, loras, fisher_mask, tmp_path):
    from release.core.manifest import Manifest
    from release.merge.facts import MergeFacts
    from release.runner import run_release
    from release.spec.schema import ReleaseSpec

    text = _seed003(loras, tiny_llama_dir, fisher_mask)
    spec = ReleaseSpec(
        name="tiny",
        version="1.0",
        base={"path": str(tiny_llama_dir)},
        adapter={"path": str(loras["a"])},
        workspace=tmp_path / "build",
        merge={"recipe": yaml.safe_load(text)},
        eval={"enabled": False},
    )
    list(run_release(spec, only=["adapter", "merge"]))
    _, direct = _run(_recipe(text), tiny_llama_dir, tmp_path / "direct")
    manifest = Manifest.load(tmp_path / "build" / "manifest.json")
    facts = MergeFacts.of(manifest)
    assert facts is not None and facts.recipe is not None
    assert [m.name for m in facts.recipe.methods] == ["task_arithmetic", "slerp"]
    assert facts.tensors_merged == direct.tensors_merged
    # the mask file is keyed by its bytes (an input), by name in the settings: no path
    settings = json.dumps(manifest.stages["merge"].settings)
    assert "keep.safetensors" in settings and str(fisher_mask.parent) not in settings
    for name, digest in direct.sha256.items():
        written = (tmp_path / "build" / "merge" / name).read_bytes()
        assert hashlib.sha256(written).hexdigest() == digest
    # the recipe is part of the stage's key: another t merges again
    changed = text.replace("{t: 0.3}", "{t: 0.5}")
    spec = spec.model_copy(
        update={"merge": spec.merge.model_copy(update={"recipe": _recipe(changed)})}
    )
    events = list(run_release(spec, only=["adapter", "merge"]))
    assert any(getattr(e, "stage", None) == "merge" for e in events)
    after = Manifest.load(tmp_path / "build" / "manifest.json")
    assert after.stages["merge"].key != manifest.stages["merge"].key


def test_evaluate_measures_the_merge_beside_its_inputs(tiny_llama_dir, loras, tmp_path):
    """Each input's perplexity is the one transformers and PEFT give for it (base + LoRA,
    as their users load it); the merged model's too; the card shows them, says the
    equivalence check does not apply, and names the gate's input without a local path.
    The release names no adapter: intake checks the base alone, and its fingerprint keys
    the base's figures in the cache, as for an adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cards.render import render_model_card
    from release.checkpoint.fingerprint import base_fingerprint
    from release.checkpoint.safetensors import list_checkpoint
    from release.core.manifest import Manifest
    from release.evaluate.facts import EvaluateFacts
    from release.evaluate.scores import ReleaseScores
    from release.merge.facts import AdapterFacts
    from release.report.card_context import card_context
    from release.report.card_settings import CardSettings
    from release.runner import run_release
    from release.spec.schema import ReleaseSpec

    heldout = tmp_path / "heldout.txt"
    heldout.write_text("The quick brown fox jumps over the lazy dog. " * 12, encoding="utf-8")
    recipe = {
        "merge_method": "linear",
        "models": [
            {"model": str(loras["a"]), "parameters": {"weight": 0.5}},
            {"model": str(loras["b"]), "parameters": {"weight": 0.5}},
        ],
    }
    spec = ReleaseSpec(
        name="tiny",
        version="1.0",
        base={"path": str(tiny_llama_dir), "repo_id": "org/base"},
        workspace=tmp_path / "build",
        merge={"recipe": recipe},
        eval={
            "prompts": [],
            "heldout_text": str(heldout),
            "gate": {"no_worse_than": str(loras["a"]), "tolerance": 1.0},
        },
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_RELEASE_EVAL_CACHE", str(tmp_path / "cache"))
        list(run_release(spec, only=["adapter", "merge", "evaluate"]))
    manifest = Manifest.load(tmp_path / "build" / "manifest.json")
    facts = EvaluateFacts.of(manifest)
    assert facts.equivalence is None and facts.merge_inputs is not None
    intake = AdapterFacts.of(manifest)
    assert intake.peft_type is None and intake.base_id == "org/base"
    assert intake.base_fingerprint == base_fingerprint(list_checkpoint(tiny_llama_dir))
    assert (tmp_path / "cache" / f"{facts.base_figures.key}.safetensors").is_file()
    figures = {m.name: m for m in facts.merge_inputs.models}
    assert [(m.name, m.kind) for m in facts.merge_inputs.models] == [
        ("org/base", "base"),
        ("a", "lora"),
        ("b", "lora"),
    ]

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "build" / "merge")
    ids = tokenizer(heldout.read_text(), return_tensors="pt").input_ids  # one window

    def hf_perplexity(model) -> float:
        with torch.no_grad():
            return math.exp(model(ids, labels=ids).loss.item())

    # float32 sums in another order (the thread count an earlier test in the process left)
    # moved the random model's 48k perplexity by up to 1.3e-4 of itself in the full suite:
    # 1e-3 is 0.001 nats of the loss, far below what a wrong model or text gives
    close = {"rel": 1e-3}
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    assert figures["org/base"].perplexity == pytest.approx(hf_perplexity(base), **close)
    with_a = PeftModel.from_pretrained(base, loras["a"]).eval()
    assert figures["a"].perplexity == pytest.approx(hf_perplexity(with_a), **close)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "build" / "merge")
    assert facts.perplexity.merged == pytest.approx(hf_perplexity(merged), **close)
    gate = facts.merge_inputs.gate
    assert gate.name == "a" and gate.limit == pytest.approx(2 * figures["a"].perplexity)

    settings = CardSettings.of(spec)
    card = render_model_card(
        card_context(settings, manifest, "merged", ReleaseScores(), spec.workspace)
    )
    assert "| Merged model vs base + adapter | not applicable" in card
    assert "### Merged vs inputs" in card
    assert f"| `a` | base + LoRA adapter | {figures['a'].perplexity:.2f} |" in card
    assert f"| **this merge** | merged | **{facts.perplexity.merged:.2f}** |" in card
    assert "The release gate held this merge to `a`" in card
    assert str(loras["a"].parent) not in card


# --- the preflight's estimate ---------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoints(tiny_llama_dir, tmp_path_factory) -> dict[str, Path]:
    """Three full fine-tunes of the tiny Llama: its folder, each tensor moved by noise."""
    import shutil

    root = tmp_path_factory.mktemp("recipe-checkpoints")
    base = load_folder(tiny_llama_dir)
    found = {}
    for seed, name in enumerate(["c1", "c2", "c3"], start=1):
        shutil.copytree(tiny_llama_dir, root / name)
        generator = torch.Generator().manual_seed(seed)
        moved = {
            key: (value.float() + 0.01 * torch.randn(value.shape, generator=generator)).to(
                value.dtype
            )
            for key, value in base.items()
        }
        save_file(moved, root / name / "model.safetensors", metadata={"format": "pt"})
        found[name] = root / name
    return found


@pytest.mark.parametrize(
    "text",
    [
        "merge_method: linear\nmodels: [{model: c1, parameters: {weight: 1}}, "
        "{model: c2, parameters: {weight: 1}}, {model: c3, parameters: {weight: 1}}]",
        "merge_method: task_arithmetic\nbase_model: BASE\nmodels: [{model: c1, parameters: "
        "{weight: 1}}, {model: c2, parameters: {weight: 1}}, {model: c3, parameters: "
        "{weight: 1}}]",
        "merge_method: ties\nbase_model: BASE\nmodels: [{model: c1, parameters: {weight: 1, "
        "density: 0.5}}, {model: c2, parameters: {weight: 1, density: 0.5}}, {model: c3, "
        "parameters: {weight: 1, density: 0.5}}]",
        "merge_method: slerp\nbase_model: c1\nmodels: [{model: c1}, {model: c2}]\n"
        "parameters: {t: 0.3}",
        "- {name: soup, merge_method: linear, models: [{model: c1, parameters: {weight: 1}}, "
        "{model: c2, parameters: {weight: 1}}]}\n- {merge_method: slerp, base_model: soup, "
        "models: [{model: soup}, {model: c3}], parameters: {t: 0.3}}",
    ],
    ids=["linear", "task_arithmetic", "ties", "slerp", "linear-then-slerp"],
)
def test_the_preflight_counts_what_a_recipe_holds(tiny_llama_dir, checkpoints, text, tmp_path):
    """merge_needs' peak for a recipe against the merge's own peak, as tracemalloc (which
    numpy reports its arrays to) measures it: whole-tensor methods hold every input's
    tensor, row-wise ones a block of each; the one-adapter estimate (three copies of the
    largest tensor) was 0.2-0.6 of these."""
    import tracemalloc

    from release.checkpoint.safetensors import list_checkpoint
    from release.merge.needs import merge_needs

    root = next(iter(checkpoints.values())).parent
    recipe = _recipe(text.replace("BASE", str(tiny_llama_dir)))
    inputs = resolve_inputs(recipe, BaseIdentity(folder=tiny_llama_dir, path=tiny_llama_dir), root)
    (tmp_path / "out").mkdir()
    tracemalloc.start()
    try:
        for _ in merge_recipe(recipe, inputs, tmp_path / "out"):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    needs = merge_needs(tiny_llama_dir, None, "auto", 2 * 10**9, recipe)
    largest = max(4 * info.numel for info in list_checkpoint(tiny_llama_dir).values())
    assert peak > 4 * largest  # the measure sees the tensors (12 MiB each here)
    assert 0.98 * peak <= needs.memory_bytes <= 1.05 * peak
