"""Run the sanity eval's model checks in this process and print, as JSON, the resident
memory before them (torch, transformers and peft imported) and the peak during them:
what the preflight's estimate is measured against (tests/test_evaluate_memory.py).

    python -m tests.support.eval_peak BASE ADAPTER MERGED DTYPE
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import peft  # noqa: F401  (imported before the baseline, as in a stage's process)
import psutil
import transformers  # noqa: F401

from release.evaluate.checks import model_checks
from release.evaluate.loading import LoadPlan
from release.evaluate.settings import EvaluateSettings
from release.spec.schema import ReleaseSpec
from tests.support.reporters import SilentReporter


def main(base: Path, adapter: Path, merged: Path, dtype: str) -> dict[str, int]:
    spec = ReleaseSpec.model_validate(
        {
            "name": "peak",
            "version": "0.1.0",
            "base": {"path": str(base)},
            "adapter": {"path": str(adapter)},
            # one short answer: what is measured is memory, and the test LoRA's long
            # answers repeat themselves (the smoke test would stop the run at its end)
            "eval": {"prompts": ["Say hello."], "max_new_tokens": 6},
        }
    )
    before = psutil.Process().memory_info().rss
    checks = model_checks(
        EvaluateSettings.of(spec),
        base,
        adapter,
        merged,
        LoadPlan(dtype, 0),
        SilentReporter(),
        base_fingerprint=None,
    )
    for _ in checks:
        pass
    return {"before": before, "peak": high_water_mark()}


def high_water_mark() -> int:
    """This process's peak resident bytes: VmHWM, which belongs to the memory map the
    exec made. Not ``getrusage``'s ru_maxrss: that keeps the parent's resident size at
    the fork (Linux carries it across exec), so under a pytest holding 3 GB of fixtures
    it read 3.27 GB for an eval that peaked under 1 GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


if __name__ == "__main__":
    base, adapter, merged, dtype = sys.argv[1:5]
    print(json.dumps(main(Path(base), Path(adapter), Path(merged), dtype)))
