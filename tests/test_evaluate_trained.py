"""The merge equivalence limit in bf16 on a really trained adapter (the SmolLM2 LoRA of
30 demo steps), not a random one: the right merge passes, and merges broken on purpose
fail it.

Measured (share of the adapter's effect, bench/equivalence.py): the right merge 0.18 in
bf16 and 0.09 in float32, against the limit of 0.25; the base's own bf16 rounding (bf16
against float32 logits) is 0.17, so in bf16 a right merge's error is the rounding. The
broken merges: the delta at half scale 0.63, doubled 1.14, every down_proj delta missing
0.52, the deltas on a base with its rows shuffled 8.2."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from release.cli import main
from release.core.errors import WorkError
from release.evaluate.loading import LoadPlan
from release.spec.schema import ReleaseSpec
from tests.test_evaluate import SPEC, _checks, _delta, _edited

BF16 = LoadPlan("bfloat16", 0)


@pytest.fixture(scope="module")
def trained_release(smollm2_base_dir, smollm2_adapter_dir, tmp_path_factory):
    """The trained LoRA through the pipeline's adapter and merge stages; the spec's
    held-out text is short, as the perplexity check is not what is tested."""
    import shutil

    root = tmp_path_factory.mktemp("trained")
    shutil.copytree(smollm2_adapter_dir, root / "adapter")
    spec_path = root / "release.yaml"
    spec_path.write_text(SPEC.format(base=smollm2_base_dir) + "eval:\n  enabled: false\n")
    assert main(["run", str(spec_path), "--stage", "adapter", "--stage", "merge"]) == 0
    heldout = root / "heldout.txt"
    text = resources.files("release").joinpath("data/heldout.txt").read_text("utf-8")
    heldout.write_text(text[:2000], encoding="utf-8")
    spec = ReleaseSpec.model_validate(
        {
            "name": "trained",
            "version": "0.1.0",
            "base": {"path": str(smollm2_base_dir)},
            "adapter": {"path": str(root / "adapter")},
            "eval": {"prompts": [], "heldout_text": str(heldout)},
        }
    )
    return spec, root / "build"


@pytest.mark.slow
def test_the_right_merge_of_a_trained_adapter_passes_in_bf16(trained_release):
    spec, workspace = trained_release
    eq = _checks(spec, workspace, workspace / "merge", BF16).equivalence
    assert eq.passed and eq.adapter_effect > 0.5
    assert eq.relative_error <= 0.25 and eq.top1_agreement >= 0.95


def _scaled(base, factor):
    def edit(tensors):
        return {
            n: (base[n].float() + factor * _delta(tensors, base, n)).to(t.dtype)
            for n, t in tensors.items()
        }

    return edit


def _without(base, module):
    def edit(tensors):
        return {n: base[n].clone() if module in n else t for n, t in tensors.items()}

    return edit


def _shuffled_base(base):
    """The deltas on another base: the real one with each matrix's rows shuffled."""

    def edit(tensors):
        import torch

        generator = torch.Generator().manual_seed(0)
        other = {
            n: b[torch.randperm(b.shape[0], generator=generator)] if b.dim() == 2 else b
            for n, b in base.items()
        }
        return {
            n: (other[n].float() + _delta(tensors, base, n)).to(t.dtype) for n, t in tensors.items()
        }

    return edit


@pytest.mark.slow
@pytest.mark.parametrize(
    "breakage", ["half scale", "double scale", "down_proj missing", "wrong base"]
)
def test_a_broken_merge_of_a_trained_adapter_fails_in_bf16(trained_release, tmp_path, breakage):
    from tests.lora_models import load_folder

    spec, workspace = trained_release
    base = load_folder(Path(spec.base.path))
    edit = {
        "half scale": _scaled(base, 0.5),
        "double scale": _scaled(base, 2.0),
        "down_proj missing": _without(base, "down_proj"),
        "wrong base": _shuffled_base(base),
    }[breakage]
    merged = _edited(workspace, tmp_path / "merged", edit)
    with pytest.raises(WorkError) as failed:
        _checks(spec, workspace, merged, BF16)
    assert "the merged model is not base + adapter" in str(failed.value)
