"""The preflight's estimate of the sanity eval's peak against the peak RSS of a real run
in its own process (the increase over a process with torch, transformers and peft
loaded, which is what the preflight compares with the memory still available).

The peak is the same from run to run since a freed model's memory goes back to the
system before the next loads (``release.evaluate.loading.steady_heap``); before that it
moved by 60 MB in float32 and the estimate could not follow it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from release.evaluate.loading import LoadPlan
from release.evaluate.needs import evaluate_needs

REPO = Path(__file__).resolve().parent.parent


def measured_peak(base: Path, adapter: Path, merged: Path, dtype: str) -> int:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.eval_peak",
            str(base),
            str(adapter),
            str(merged),
            dtype,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rss = json.loads(done.stdout.strip().splitlines()[-1])
    return rss["peak"] - rss["before"]


@pytest.fixture(scope="module")
def merged_smollm2(smollm2_base_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A random LoRA on SmolLM2 and PEFT's merge of it (with the tokenizer files)."""
    import shutil

    from tests.support.lora_models import make_adapter, peft_merge

    root = tmp_path_factory.mktemp("eval-memory")
    adapter = make_adapter(
        smollm2_base_dir, root / "adapter", target_modules=["q_proj", "v_proj", "down_proj"]
    )
    merged = peft_merge(smollm2_base_dir, adapter, root / "merged")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (smollm2_base_dir / name).is_file():
            shutil.copy(smollm2_base_dir / name, merged / name)
    return adapter, merged


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_eval_estimate_is_within_15_percent_of_the_peak_rss(
    smollm2_base_dir, merged_smollm2, dtype
):
    adapter, merged = merged_smollm2
    estimate = evaluate_needs(smollm2_base_dir, merged, adapter, LoadPlan(dtype, 0))
    peak = measured_peak(smollm2_base_dir, adapter, merged, dtype)
    print(f"{dtype}: estimate {estimate.memory_bytes / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB")
    assert estimate.memory_bytes == pytest.approx(peak, rel=0.15), (estimate.memory_bytes, peak)
