"""Benchmark: our streaming GGUF exporter vs llama.cpp's convert_hf_to_gguf.py.

Both convert the same HF folder (default: the demo's SmolLM2-135M-Instruct, bf16) to
the same type, each in its own process, so each peak RSS is its own (measured with
wait4 on that child). Prints wall time, CPU time, peak RSS and the ratios ours /
llama.cpp.

Beside each file ours writes, the quality pass's cost (``release.gguf.quality``: llama.cpp
loads the file and runs the held-out chunks, and the figures are worked out against the
merged model's reference), in a child of its own, with the tokens it scored and its mean
KL divergence. The reference itself (the merged model on the held-out text, which the
evaluate stage's perplexity run keeps) is made once, and its row says what it cost.

    python -m bench.gguf_export [--model DIR | --gemma4] [--types f16,q8_0]
                                [--converter DIR] [--no-stage | --stage-only]

``--gemma4`` builds the tests' tiny Gemma4ForConditionalGeneration (text model with
per-layer embeddings, vision and audio towers; tests/support/gemma4_models.py) and benches its
text GGUF. Each type's line also says whether the two files hold the same tensors,
byte for byte.

llama.cpp's converter is the pinned one: from the sdist of the installed
llama-cpp-python, the same llama.cpp commit as the runtime (``release.gguf.pinned``),
unless --converter names a llama.cpp checkout. Ours is the exporter alone (no verification),
which is what the converter does too.

The "stage" row is the whole GGUF stage for all the types at once, as a release runs it:
the export and the checks (reference logits, read-back, llama.cpp's load of each file,
sha256), with the seconds of each as the stage itself measures them. The checks' child
processes run beside the export, so "checks" is the time the stage waited for them,
and on a busy machine their work also slows the export: the stage's wall is the sum
to compare. K-quants (made by llama.cpp's quantizer in a release) have the stage row
only; ``--stage-only`` (e.g. ``--types f16,q8_0,q4_k_m --stage-only``, the demo's types)
skips the per-type rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELF = [sys.executable, "-m", __spec__.name]
"""This module again, as the child process it runs a contender in."""


def converter_script(explicit: Path | None) -> Path:
    from release.gguf.pinned import SCRIPT, pinned_converter

    if explicit:
        return explicit / SCRIPT
    return pinned_converter().script


def _built_in(model: Path) -> bool:
    """Whether our exporter writes ``model`` (else the release delegates it)."""
    from release.gguf.writer import UnsupportedModel, open_source

    try:
        open_source(model)
    except UnsupportedModel:
        return False
    return True


def export_ours(model: Path, out: Path, type_name: str) -> None:
    from release.gguf.formats import FORMATS
    from release.gguf.metadata import ReleaseMetadata
    from release.gguf.writer import export_gguf, open_source

    source = open_source(model)
    for _ in export_gguf(source, out, FORMATS[type_name], ReleaseMetadata("bench", "1.0")):
        pass


def same_tensors(ours: Path, theirs: Path) -> bool:
    """Every tensor's name, type, shape and bytes equal, in the same order."""
    import gguf

    mine, their = gguf.GGUFReader(ours).tensors, gguf.GGUFReader(theirs).tensors
    return len(mine) == len(their) and all(
        (a.name, a.tensor_type, list(a.shape)) == (b.name, b.tensor_type, list(b.shape))
        and a.data.tobytes() == b.data.tobytes()
        for a, b in zip(mine, their, strict=True)
    )


def gemma4_fixture(folder: Path) -> Path:
    from tests.support.gemma4_models import make_gemma4_multimodal

    return make_gemma4_multimodal(folder / "tiny-gemma4")


def stage_ours(model: Path, out: Path, types: list[str]) -> None:
    """The GGUF stage's work (``build_gguf_files``) on ``model``; prints its timings."""
    from bench.shared import build_gguf

    built = build_gguf(model, out, types)
    print(json.dumps({"export": built.export_seconds, "checks": built.check_seconds}))


def reference_ours(model: Path, out: Path) -> None:
    """The merged model's reference on the probe and the held-out text, as the evaluate
    stage keeps it, into ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from release.core.relay import finish
    from release.reference.heldout import heldout_text
    from release.reference.probe import PROBE
    from release.reference.record import model_reference
    from release.reference.store import save_reference

    tokenizer = AutoTokenizer.from_pretrained(model)
    loaded = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    save_reference(finish(model_reference(loaded, tokenizer, PROBE, heldout_text(None))), out)


def quality_ours(gguf: Path, reference: Path) -> None:
    """The quality pass on ``gguf``: llama.cpp's child runs the held-out chunks (after
    loading the file), the figures against ``reference``; prints the tokens scored and
    the mean KL divergence."""
    from release.gguf.llama_cpp_process import LlamaCppChild, Request
    from release.gguf.quality import ScoredReference, quant_quality
    from release.reference.heldout import SET
    from release.reference.store import load_reference

    kept = load_reference(reference)
    request = Request(str(gguf), [[1, 2]], ["x"], [1], 1, reference=str(reference))
    request = dataclasses.replace(request, vocab_rows=kept.vocab_rows)
    with LlamaCppChild() as child:
        run = child.run(request)
    assert run.heldout is not None, "the reference holds no held-out chunks"
    found = quant_quality(ScoredReference.of(kept.sets[SET]), run.heldout)
    print(json.dumps({"tokens": found.tokens, "kld_mean": found.kld_mean}))


@dataclasses.dataclass(frozen=True)
class Cost:
    """One child process's wall seconds, CPU seconds (its children's included) and peak
    RSS (MiB), and what it printed."""

    wall: float
    cpu: float
    peak: float
    stdout: str

    def row(self, type_name: str, contender: str) -> str:
        return f"{type_name:6} {contender:10} {self.wall:8.1f} {self.cpu:8.1f} {self.peak:13.0f}"


def measure_cost(command: list[str], env: dict[str, str] | None = None) -> Cost:
    """What one child process cost (``Cost``)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout:
        child = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise SystemExit(f"{command[1]} failed:\n{child.stderr.read()[-2000:]}")
        stdout.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return Cost(wall, cpu, usage.ru_maxrss / 1024, stdout.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--gemma4", action="store_true", help="the tiny Gemma 4 fixture")
    parser.add_argument("--types", default="f16,q8_0")
    parser.add_argument("--converter", type=Path)
    parser.add_argument("--ours", nargs=3, metavar=("MODEL", "OUT", "TYPE"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--stage", nargs=3, metavar=("MODEL", "OUT", "TYPES"), help=argparse.SUPPRESS
    )
    parser.add_argument("--reference", nargs=2, metavar=("MODEL", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--quality", nargs=2, metavar=("GGUF", "REFERENCE"), help=argparse.SUPPRESS)
    parser.add_argument("--no-stage", action="store_true", help="leave out the stage row")
    parser.add_argument("--stage-only", action="store_true", help="only the stage row")
    args = parser.parse_args()

    if args.ours:  # child: our exporter alone
        model, out, type_name = args.ours
        export_ours(Path(model), Path(out), type_name)
        return
    if args.reference:  # child: the merged model's reference
        reference_ours(Path(args.reference[0]), Path(args.reference[1]))
        return
    if args.quality:  # child: the quality pass on one file
        quality_ours(Path(args.quality[0]), Path(args.quality[1]))
        return
    if args.stage:  # child: the GGUF stage's work, export and checks
        model, out, types = args.stage
        stage_ours(Path(model), Path(out), types.split(","))
        return

    from release.demo.smollm2 import smollm2_base

    fixture = tempfile.TemporaryDirectory(prefix="gguf-bench-model-")
    model = gemma4_fixture(Path(fixture.name)) if args.gemma4 else args.model or smollm2_base()
    script = converter_script(args.converter)
    built_in = _built_in(model)
    paths = [str(script.parent / "gguf-py"), str(script.parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    size = sum(p.stat().st_size for p in model.glob("*.safetensors"))
    print(f"model: {model.name}, {size / 1e6:.0f} MB safetensors")
    print(f"{'type':6} {'contender':10} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13}")
    with tempfile.TemporaryDirectory(prefix="gguf-bench-") as tmp:
        from release.gguf.formats import FORMATS

        reference = Path(tmp) / "reference.safetensors"
        if built_in and not args.stage_only:
            made = measure_cost([*SELF, "--reference", str(model), str(reference)])
            print(f"{made.row('all', 'reference')}   (the merged model's, on the held-out text)")
        for type_name in args.types.split(","):
            if args.stage_only or not FORMATS[type_name].in_process:
                continue  # the quantizer's types: the stage row has them
            ours_out, theirs_out = Path(tmp) / "ours.gguf", Path(tmp) / "theirs.gguf"
            ours = None
            if built_in:
                ours = measure_cost([*SELF, "--ours", str(model), str(ours_out), type_name])
            theirs = measure_cost(
                [
                    sys.executable,
                    str(script),
                    str(model),
                    "--outtype",
                    type_name,
                    "--outfile",
                    str(theirs_out),
                ],
                env,
            )
            print(theirs.row(type_name, "llama.cpp"))
            if ours is None:  # the release itself uses this converter for the model
                print(f"{type_name:6} {'ours':10} not built in (the release delegates)")
            else:
                print(ours.row(type_name, "ours"))
                print(
                    f"{type_name:6} {'ratio':10} {ours.wall / theirs.wall:8.2f} "
                    f"{ours.cpu / theirs.cpu:8.2f} {ours.peak / theirs.peak:13.2f}"
                    "   (ours / llama.cpp; below 1 is better)"
                )
                same = "yes" if same_tensors(ours_out, theirs_out) else "NO"
                print(f"{type_name:6} {'same tensors':10} {same}")
                quality = measure_cost([*SELF, "--quality", str(ours_out), str(reference)])
                found = json.loads(quality.stdout.strip().splitlines()[-1])
                print(
                    f"{quality.row(type_name, 'quality')}   ({found['tokens']} tokens scored, "
                    f"KLD mean {found['kld_mean']:.5f}; {quality.wall / ours.wall:.2f}x "
                    "the export's wall)"
                )
            ours_out.unlink(missing_ok=True)
            theirs_out.unlink()
        if built_in and not args.no_stage:
            command = [*SELF, "--stage", str(model), str(Path(tmp) / "stage")]
            stage = measure_cost([*command, args.types])
            split = json.loads(stage.stdout.strip().splitlines()[-1])
            print(f"{stage.row('all', 'stage')}   ", end="")
            print(
                f"(export {split['export']:.1f} s, checks {split['checks']:.1f} s: "
                f"{split['checks'] / split['export']:.2f}x the export)"
            )
    fixture.cleanup()


if __name__ == "__main__":
    main()
