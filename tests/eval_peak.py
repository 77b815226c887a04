"""Run the sanity eval's model checks in this process and print, as JSON, the resident
memory before them (torch, transformers and peft imported) and the peak during them:
what the preflight's estimate is measured against (tests/test_evaluate_memory.py).

    python -m tests.eval_peak BASE ADAPTER MERGED DTYPE
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import peft  # noqa: F401  (imported before the baseline, as in a stage's process)
import psutil
import transformers  # noqa: F401

from release.evaluate.checks import model_checks
from release.evaluate.loading import LoadPlan
from release.spec.schema import ReleaseSpec
from tests.reporters import SilentReporter


def main(base: Path, adapter: Path, merged: Path, dtype: str) -> dict[str, int]:
    spec = ReleaseSpec.model_validate(
        {
            "name": "peak",
            "version": "0.1.0",
            "base": {"path": str(base)},
            "adapter": {"path": str(adapter)},
            # one short answer: what is measured is memory, and the test LoRA's long
            # answers repeat themselves (the smoke test would stop the run at its end)
            # what is measured is memory: the equivalence limit is loosened, as bf16 on a
            # random test LoRA measured 0.33 of the adapter's effect in one run of three
            # (tests/test_evaluate.py checks the limits)
            "eval": {"prompts": ["Say hello."], "max_new_tokens": 6, "max_merge_error": 0.9},
        }
    )
    before = psutil.Process().memory_info().rss
    for _ in model_checks(spec, base, adapter, merged, LoadPlan(dtype, 0), SilentReporter()):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"before": before, "peak": peak}


if __name__ == "__main__":
    base, adapter, merged, dtype = sys.argv[1:5]
    print(json.dumps(main(Path(base), Path(adapter), Path(merged), dtype)))
