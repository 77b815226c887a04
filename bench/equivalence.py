"""Benchmark: the merge equivalence check's share (mean |merged - (base + adapter)| over the
adapter's mean effect, limit ``eval.max_merge_error``) on a really trained adapter, for the
right merge and for merges broken on purpose, in bf16 and float32.

The base is SmolLM2-135M-Instruct and the adapter the demo's LoRA of 30 steps, both from
the tests' cache (.cache/tests, built as the tests build them when missing). The right
merge is the pipeline's own; the broken ones are its tensors edited: the delta scaled,
some deltas dropped, the deltas on the base with its rows shuffled. "share" is what the
check limits (against PEFT's merge stored in the checkpoint's dtype); "vs unmerged" the
same against base + adapter's own logits (the check's reference before: it counts the
rounding of the bf16 checkpoint); "fitted scale" the merged model's effect fitted on the
adapter's (1 for a right merge, rounding aside). Also printed: the base's own rounding in
bf16 (bf16 against float32 logits, as a share of the effect).

    python -m bench.equivalence [--workdir DIR] [--adapter DIR]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def breakages(base: dict, right: dict) -> dict:
    """Edits of the right merge's tensors, by name."""
    import torch

    def delta(name):
        return right[name].float() - base[name].float()

    def scaled(factor):
        return {n: (base[n].float() + factor * delta(n)).to(t.dtype) for n, t in right.items()}

    def without(chosen):
        return {n: base[n].clone() if chosen(n) else t for n, t in right.items()}

    generator = torch.Generator().manual_seed(0)
    shuffled = {
        n: b[torch.randperm(b.shape[0], generator=generator)] if b.dim() == 2 else b
        for n, b in base.items()
    }
    half_the_layers = tuple(f"layers.{i}." for i in range(0, 64, 2))
    return {
        "scale x2": scaled(2.0),
        "scale x0.5": scaled(0.5),
        "scale x1.1": scaled(1.1),
        "missing layer 0 v_proj": without(lambda n: n == "model.layers.0.self_attn.v_proj.weight"),
        "missing every down_proj": without(lambda n: "down_proj" in n),
        "missing half the layers": without(lambda n: any(k in n for k in half_the_layers)),
        "not merged (the base)": without(lambda n: True),
        "wrong base (rows shuffled)": {
            n: (shuffled[n].float() + delta(n)).to(t.dtype) for n, t in right.items()
        },
    }


def write_variants(base_dir: Path, merged: Path, workdir: Path) -> dict[str, Path]:
    from safetensors.torch import save_file

    from tests.support.lora_models import load_folder

    base, right = load_folder(base_dir), load_folder(merged)
    folders = {"right": merged}
    for index, (name, tensors) in enumerate(breakages(base, right).items()):
        target = workdir / f"broken-{index}"
        shutil.copytree(merged, target, dirs_exist_ok=True)
        (weights,) = target.glob("*.safetensors")
        save_file(tensors, weights, metadata={"format": "pt"})
        folders[name] = target
    return folders


def measure(base_dir: Path, adapter: Path, folders: dict[str, Path], dtype: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from release.core.relay import finish
    from release.evaluate.loading import LoadPlan, checkpoint_dtype, load_model
    from release.evaluate.sanity import (
        PROBE_PROMPTS,
        merge_equivalence,
        next_token_logits,
        probe_reference,
    )

    plan = LoadPlan(dtype, 0)
    tokenizer = AutoTokenizer.from_pretrained(folders["right"])

    def logits(model) -> list[torch.Tensor]:
        return [t.cpu() for t in next_token_logits(model, tokenizer, PROBE_PROMPTS)]

    def mean_gap(ours, theirs) -> torch.Tensor:
        return torch.cat([(a - b).abs().flatten() for a, b in zip(ours, theirs, strict=True)])

    with_adapter = PeftModel.from_pretrained(
        load_model(base_dir, plan, trust_remote_code=False), adapter
    ).eval()
    unmerged = logits(with_adapter)
    with with_adapter.disable_adapter():
        bare = logits(with_adapter)
    stored = getattr(torch, checkpoint_dtype(folders["right"]))
    reference = finish(probe_reference(with_adapter, tokenizer, PROBE_PROMPTS, stored, bare))
    del with_adapter
    gc.collect()
    effect = reference.adapter_effect
    print(f"{dtype}: the adapter's mean effect {effect:.4f}")
    if dtype != "float32":
        full = logits(load_model(base_dir, LoadPlan("float32", 0), trust_remote_code=False))
        noise = mean_gap(bare, full).mean().item()
        print(f"{dtype}: the base's own rounding {noise / effect:.3f} of it")
    print(f"  {'merge':28} {'share':>6} {'top-1':>6} {'vs unmerged':>12} {'fitted scale':>13}")
    for name, folder in folders.items():
        model = load_model(folder, plan, trust_remote_code=False)
        equivalence = finish(merge_equivalence(model, tokenizer, reference))
        ours = logits(model)
        along = sum(
            ((o - b) * (r - b)).sum().item() for o, r, b in zip(ours, unmerged, bare, strict=True)
        )
        norm = sum(((r - b) ** 2).sum().item() for r, b in zip(unmerged, bare, strict=True))
        print(
            f"  {name:28} {equivalence.relative_error:6.3f} {equivalence.top1_agreement:6.3f} "
            f"{mean_gap(ours, unmerged).mean().item() / effect:12.3f} {along / norm:13.3f}",
            flush=True,
        )
        del model
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--adapter", type=Path, help="default: the demo's trained LoRA")
    args = parser.parse_args()
    from release.demo.smollm2 import REPO_ID, smollm2_base
    from release.demo.train import train_lora
    from release.runner import run_release
    from release.spec.schema import ReleaseSpec

    cache = REPO / ".cache" / "tests"
    base = smollm2_base(cache)
    adapter = args.adapter or cache / "smollm2-lora-30steps"
    if not (adapter / "adapter_config.json").is_file():
        train_lora(base, adapter, base_id=REPO_ID, steps=30)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="equivalence-bench-"))
    try:
        spec = ReleaseSpec(
            name="bench",
            version="1.0",
            base={"path": str(base)},
            adapter={"path": str(adapter)},
            workspace=workdir / "build",
            eval={"enabled": False},
        )
        for _ in run_release(spec, only=["adapter", "merge"]):
            pass
        folders = write_variants(base, workdir / "build" / "merge", workdir)
        for dtype in ("bfloat16", "float32"):
            measure(base, workdir / "build" / "adapter", folders, dtype)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
