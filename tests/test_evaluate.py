"""The sanity eval with one model resident at a time, in bf16 as on accelerators and in
float32 as on the CPU: a right merge (the pipeline's own) passes, and merges broken on
purpose (a wrong scale, a missing tensor, a wrong base) fail the stage with the numbers.

The broken merges are the right one's tensors edited with safetensors: the delta
doubled, one module's delta dropped, the deltas added to another base.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from release.cli import main
from release.core.errors import WorkError
from release.evaluate.checks import model_checks
from release.evaluate.loading import LoadPlan
from release.evaluate.settings import EvaluateSettings
from release.spec.schema import ReleaseSpec
from tests.support.reporters import SilentReporter

SPEC = "name: tiny\nversion: 0.1.0\nbase:\n  path: {base}\nadapter:\n  path: adapter\n"
PLANS = [LoadPlan("bfloat16", 0), LoadPlan("float32", 0)]
EDITED = "model.layers.0.self_attn.v_proj.weight"
"""The tensor a "missing tensor" merge leaves at the base's value. (On this random tiny
model a missing q_proj delta moves the logits by only 1.5% of the adapter's effect: the
check sees what changes the model's outputs, not every tensor.)"""


@pytest.fixture(scope="module")
def released(tiny_llama_dir, tmp_path_factory) -> tuple[ReleaseSpec, Path]:
    """A tiny release through the pipeline's adapter and merge stages."""
    from tests.support.lora_models import make_adapter

    root = tmp_path_factory.mktemp("evaluate")
    make_adapter(tiny_llama_dir, root / "adapter", target_modules=["q_proj", "v_proj", "up_proj"])
    spec_path = root / "release.yaml"
    spec_path.write_text(SPEC.format(base=tiny_llama_dir) + "eval:\n  enabled: false\n")
    assert main(["run", str(spec_path), "--stage", "adapter", "--stage", "merge"]) == 0
    spec = ReleaseSpec.model_validate(
        {
            "name": "tiny",
            "version": "0.1.0",
            "base": {"path": str(tiny_llama_dir)},
            "adapter": {"path": str(root / "adapter")},
            "eval": {"prompts": ["Hi"]},
        }
    )
    return spec, root / "build"


def _checks(spec: ReleaseSpec, workspace: Path, merged: Path, plan: LoadPlan):
    run = model_checks(
        EvaluateSettings.of(spec),
        spec.base.path,
        workspace / "adapter",
        merged,
        plan,
        SilentReporter(),
        base_fingerprint=None,
    )
    while True:
        try:
            next(run)
        except StopIteration as done:
            return done.value


def _edited(workspace: Path, target: Path, edit) -> Path:
    """A copy of the merged folder with its tensors passed through ``edit``."""
    shutil.copytree(workspace / "merge", target)
    (weights,) = target.glob("*.safetensors")
    tensors = load_file(weights)
    save_file(edit(tensors), weights, metadata={"format": "pt"})
    return target


@pytest.mark.parametrize("plan", PLANS, ids=lambda plan: plan.dtype)
def test_a_right_merge_passes_with_one_model_resident(released, plan):
    spec, workspace = released
    facts = _checks(spec, workspace, workspace / "merge", plan)
    eq = facts.equivalence
    assert eq.passed and eq.top1_agreement >= 0.9 and eq.relative_error <= 0.25
    assert eq.adapter_effect > 0
    assert facts.device == f"cpu ({plan.dtype})"


def _delta(tensors, base, name):
    return tensors[name].float() - base[name].float()


def _wrong_scale(base):
    def edit(tensors):
        return {
            n: (base[n].float() + 2 * _delta(tensors, base, n)).to(t.dtype)
            for n, t in tensors.items()
        }

    return edit


def _missing_tensor(base):
    def edit(tensors):
        return tensors | {EDITED: base[EDITED].clone()}

    return edit


def _wrong_base(base, other):
    def edit(tensors):
        return {
            n: (other[n].float() + _delta(tensors, base, n)).to(t.dtype) for n, t in tensors.items()
        }

    return edit


@pytest.fixture(scope="module")
def other_base(smollm2_tokenizer_dir, tmp_path_factory) -> Path:
    from transformers import AutoTokenizer

    from tests.support.models import make_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    return make_tiny_llama(tmp_path_factory.mktemp("other-base"), tokenizer, seed=1)


@pytest.mark.parametrize("plan", PLANS, ids=lambda plan: plan.dtype)
@pytest.mark.parametrize("breakage", ["wrong scale", "missing tensor", "wrong base"])
def test_a_broken_merge_fails_the_stage(released, other_base, tmp_path, plan, breakage):
    from tests.support.lora_models import load_folder

    spec, workspace = released
    base = load_folder(spec.base.path)
    edit = {
        "wrong scale": _wrong_scale(base),
        "missing tensor": _missing_tensor(base),
        "wrong base": _wrong_base(base, load_folder(other_base)),
    }[breakage]
    merged = _edited(workspace, tmp_path / "merged", edit)
    with pytest.raises(WorkError) as failed:
        _checks(spec, workspace, merged, plan)
    assert "the merged model is not base + adapter" in str(failed.value)
    # the likely causes, each with what to do; never "report it"
    assert "init_lora_weights" in str(failed.value) and "report it" not in str(failed.value)
