"""Benchmark: a release at the users' sizes, stage by stage, beside the anchors and the floor.

Builds a random Llama-shaped bf16 model of a real size (3.8B by default: 36 layers,
hidden 3072, intermediate 8192, 24 heads / 8 KV heads; the SmolLM2 tokenizer, 49k
tokens; ``--size e4b``: Gemma-4-E4B-it's text model in its real shapes, 7.5B parameters
with its 262144 x 42*256 per-layer embedding table, and a Gemma 4 tokenizer filled to its
vocabulary) and a LoRA of r=16 on all seven projections, written tensor by tensor, then runs
the release through the CLI (``model-release run --stage ...``), one stage per process:
adapter, merge, evaluate, gguf (f16 and q8_0), card. Beside them, on the same model in
the same run:

- PEFT: load base + adapter, ``merge_and_unload``, ``save_pretrained``;
- llama.cpp's ``convert_hf_to_gguf.py`` (the pinned one: ``release.gguf.pinned``) to f16
  and to q8_0, and its quantizer (llama-cpp-python's ``llama_model_quantize``) f16 to q8_0;
- the floor: the bytes a stage must read and write at this disk's measured speed, and
  for the evaluate stage one forward pass per token it must evaluate (the held-out text
  through base and merged model), timed on the merged model in the dtype and device the
  stage chooses.

    python -m bench.scale [--size 0.5b|1b|3.8b|8b|tiny] [--workdir DIR]
                          [--no-anchors | --anchors-only]
                          [--json-out FILE]

Each row: wall, CPU time (the process tree's user + sys), the tree's peak resident
memory, bytes written to disk, the longest time it printed nothing, the floor and
wall / floor, and on a GPU machine the GPUs' peak memory (``bench/shared.run_tree``).
Our stages also show the preflight's estimate of their peak against the measured one.
A stage that fails or is refused (its preflight) is shown with its message; the stages
after it and the anchors that need its output are left out.

The generated model is kept in ``--workdir`` (default ``~/.cache/model-release/scale``)
under its size and reused by the next run; each run releases into a fresh workspace.
Rows are printed as they finish, and ``--json-out`` is rewritten after each. Each stage's
events (``--json``), with the second each came at, are kept beside the spec in
``events-STAGE.txt``, and the table ends with where a stage of ours went quiet longest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SELF = [sys.executable, "-m", __spec__.name]
"""This module again, as the child process it runs a contender in."""

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STAGES = ("adapter", "merge", "evaluate", "gguf", "card")
TYPES = ("f16", "q8_0")
RANK = 16
GB = 10**9


def _shapes():
    from bench.shared import LlamaShape

    return {
        "tiny": LlamaShape(256, 688, 2, 4, 2),
        "0.5b": LlamaShape(1024, 4096, 24, 16, 8),
        "1b": LlamaShape(2048, 8192, 16, 32, 8),  # Llama-3.2-1B
        "3.8b": LlamaShape(3072, 8192, 36, 24, 8),
        "8b": LlamaShape(4096, 14336, 32, 32, 8),  # Llama-3.1-8B
    }


GEMMA4 = {"e4b": "Gemma-4-E4B, text"}
"""Sizes of Gemma 4's layout (``tests.support.sparse_models.SHAPES``): Gemma-4-E4B-it's
text model, 7.5B parameters, 2.8B of them its per-layer embedding table."""
SIZES = ("tiny", "0.5b", "1b", "3.8b", "8b", *GEMMA4)


def generate(model: Path, size: str) -> None:
    """The base (SmolLM2's tokenizer; a Gemma 4 one for Gemma 4's sizes) and its LoRA,
    in ``model``."""
    from bench.shared import write_llama, write_lora, write_random
    from release.demo.smollm2 import load_tokenizer

    if size in GEMMA4:
        from tests.support.gemma4_models import gemma4_tokenizer
        from tests.support.sparse_models import SHAPES, real_model, save_model_files

        tokenizer = gemma4_tokenizer()
        config, shapes = real_model(SHAPES[GEMMA4[size]], tokenizer)
        (model / "base").mkdir()
        save_model_files(model / "base", config, tokenizer)
        write_random(model / "base", shapes)
        write_lora(model / "adapter", model / "base", shapes, RANK)
        return
    tokenizer = load_tokenizer()
    config = _shapes()[size].config(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    shapes = write_llama(model / "base", config, tokenizer)
    write_lora(model / "adapter", model / "base", shapes, RANK)


def prepare(workdir: Path, size: str) -> Path:
    """The model of ``size`` under ``workdir``, generated unless a finished one is there
    (``generated.json`` is written last); generated in a child, as the parent must hold
    no model (``bench.shared``)."""
    model = workdir / f"{'gemma4' if size in GEMMA4 else 'llama'}-{size}"
    marker = model / "generated.json"
    if marker.is_file() and json.loads(marker.read_text()) == {"size": size, "rank": RANK}:
        return model
    shutil.rmtree(model, ignore_errors=True)
    model.mkdir(parents=True)
    print(f"generating the {size} model in {model} ...", flush=True)
    subprocess.run([*SELF, "--child", "generate", size, str(model)], check=True)
    marker.write_text(json.dumps({"size": size, "rank": RANK}))
    return model


def write_spec(folder: Path, model: Path, types: tuple[str, ...] = TYPES) -> Path:
    spec = {
        "name": "scale-bench",
        "version": "1.0.0",
        "base": {"path": str(model / "base")},
        "adapter": {"path": str(model / "adapter")},
        "workspace": str(folder / "release"),
        "eval": {"prompts": []},  # a random model cannot chat
        "gguf": {"types": list(types)},
    }
    path = folder / "release.yaml"
    path.write_text(json.dumps(spec, indent=2))  # JSON is YAML
    return path


# --- children: the anchors and the floor's forward pass --------------------------------


def quantize(source: Path, target: Path) -> None:
    """llama.cpp's quantizer, through llama-cpp-python's binding, f16 to q8_0."""
    from release.gguf.formats import FORMATS
    from release.gguf.kquant import quantize_with_llama_cpp

    quantize_with_llama_cpp(source, target, FORMATS["q8_0"])


def forward(base: Path, adapter: Path, merged: Path) -> None:
    """Seconds per token of one forward pass of the merged model, loaded as the evaluate
    stage would (its plan: dtype and device), and the tokens that stage evaluates."""
    import time

    import torch
    from transformers import AutoTokenizer

    from release.evaluate.loading import load_model, visible_gpus
    from release.evaluate.needs import choose_plan
    from release.preflight import available_memory
    from release.reference.heldout import heldout_text
    from release.reference.probe import PROBE
    from release.reference.record import heldout_sequences

    plan, _ = choose_plan(base, merged, adapter, visible_gpus(), available_memory()[0])
    tokenizer = AutoTokenizer.from_pretrained(merged)
    # the shipped sample, as the bench's spec names none
    sequences = heldout_sequences(tokenizer, heldout_text(None), PROBE)
    model = load_model(merged, plan, trust_remote_code=False)
    window = torch.tensor([sequences[0]], device=model.device)
    with torch.inference_mode():
        model(window[:, :16])  # warm-up
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        model(window)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "s_per_token": seconds / window.shape[1],
                "tokens": sum(len(ids) for ids in sequences),
                "plan": plan.device,
            }
        )
    )


# --- the run ---------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    usage: object | None = None  # bench.shared.TreeUsage
    floor_s: float | None = None
    estimate_bytes: int | None = None
    note: str = ""


class Table:
    """Rows printed as they finish, and the whole table at the end."""

    def __init__(self, json_out: Path | None, header: dict) -> None:
        self.rows: list[Row] = []
        self.json_out = json_out
        self.header = header
        self.gpu = shutil.which("nvidia-smi") is not None

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(self.line(row), flush=True)
        if self.json_out:
            self.json_out.write_text(json.dumps(self.to_json(), indent=2))
        return row

    def to_json(self) -> dict:
        rows = [
            {
                "name": r.name,
                **(r.usage.figures() if r.usage else {}),
                "floor_s": r.floor_s,
                "estimate_bytes": r.estimate_bytes,
                "note": r.note,
            }
            for r in self.rows
        ]
        return {**self.header, "rows": rows}

    def title(self) -> str:
        gpu = f" {'GPU GB':>7}" if self.gpu else ""
        return (
            f"{'':28} {'wall s':>8} {'CPU s':>8} {'peak RSS GB':>11} {'est. GB':>8} "
            f"{'written GB':>10} {'silent s':>8} {'floor s':>8} {'wall/floor':>10}{gpu}"
        )

    def line(self, row: Row) -> str:
        usage = row.usage
        if usage is None:
            return f"{row.name:28} {row.note}"
        floor = f"{row.floor_s:8.1f} {usage.wall_s / row.floor_s:10.1f}" if row.floor_s else ""
        floor = floor or f"{'':8} {'':10}"
        estimate = f"{row.estimate_bytes / GB:8.2f}" if row.estimate_bytes else f"{'':8}"
        gpu = ""
        if self.gpu:
            gpu = f" {usage.gpu_peak_bytes / GB:7.2f}" if usage.gpu_peak_bytes else f" {'':7}"
        text = (
            f"{row.name:28} {usage.wall_s:8.1f} {usage.cpu_s:8.1f} "
            f"{usage.peak_rss_bytes / GB:11.2f} {estimate} {usage.written_bytes / GB:10.2f} "
            f"{usage.longest_silence_s:8.1f} {floor}{gpu}"
        )
        return text + (f"  {row.note}" if row.note else "")

    def print(self) -> None:
        print()
        print(self.title())
        for row in self.rows:
            print(self.line(row))
        for row in self.rows:  # where a stage went quiet longest (10 s is the issue's bound)
            usage = row.usage
            if row.name.startswith("ours") and usage and usage.longest_silence_s > 10:
                said = usage.silent_after[:160]
                print(f"{row.name}: {usage.longest_silence_s:.0f} s silent after {said}")


def failure(usage) -> str:
    """The one line a failed command ended with (the CLI's error, or an event's)."""
    for line in reversed(usage.stdout.splitlines()):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        message = event.get("message") or event.get("error")
        if message:
            return f"FAILED (exit {usage.returncode}): {message}"
    said = (usage.stderr_tail.strip().splitlines() or ["no output"])[-1]
    return f"FAILED (exit {usage.returncode}): {said}"


def run_ours(table: Table, spec: Path, speed: tuple[float, float], model: Path) -> bool:
    """Each stage in its own CLI process; False once one failed."""
    from bench.shared import folder_bytes, run_tree

    write, read = speed
    workspace = spec.parent / "release"
    base, adapter = folder_bytes(model / "base"), folder_bytes(model / "adapter")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for stage in STAGES:
        command = [sys.executable, "-m", "release.cli", "run", str(spec), "--stage", stage]
        usage = run_tree([*command, "--json"], env=env, cwd=REPO)
        # its events with their times, to see where a stage's time goes
        timeline = "".join(f"{at:9.2f} {line}\n" for at, line in usage.timeline)
        (spec.parent / f"events-{stage}.txt").write_text(timeline, encoding="utf-8")
        row = Row(f"ours: {stage}", usage)
        if usage.returncode:
            row.note = failure(usage)
            table.add(row)
            return False
        record = json.loads((workspace / "manifest.json").read_text())["stages"][stage]
        row.estimate_bytes = record["facts"].get("estimated_peak_memory_bytes") or None
        merged = folder_bytes(workspace / "merge") if stage != "adapter" else 0
        if stage == "adapter":
            row.floor_s = (base + adapter) / read
        elif stage == "merge":
            row.floor_s = (base + adapter) / read + merged / write
        elif stage == "evaluate":
            row.floor_s = (base + adapter + merged) / read  # the passes added by the floor row
        elif stage == "gguf":
            row.floor_s = merged / read + folder_bytes(workspace / "gguf") / write
        table.add(row)
    return True


def run_floor_forward(table: Table, model: Path, workspace: Path) -> None:
    """The evaluate stage's floor: its bytes read plus one forward pass per token of the
    held-out text through the base and the merged model (what perplexity needs)."""
    from bench.shared import run_tree

    command = [*SELF, "--child", "forward"]
    command += [str(model / "base"), str(workspace / "adapter"), str(workspace / "merge")]
    usage = run_tree(command, cwd=REPO)
    if usage.returncode:
        table.add(Row("floor: forward pass", note=failure(usage)))
        return
    said = json.loads(usage.stdout.strip().splitlines()[-1])
    for row in table.rows:
        if row.name == "ours: evaluate" and row.floor_s is not None:
            row.floor_s += 2 * said["tokens"] * said["s_per_token"]
    note = (
        f"{said['s_per_token'] * 1000:.1f} ms/token on {said['plan']}, {said['tokens']} "
        f"held-out tokens x 2 models = {2 * said['tokens'] * said['s_per_token']:.1f} s"
    )
    table.add(Row("floor: forward (measured)", usage, note=note))


def run_anchors(table: Table, model: Path, workspace: Path, out: Path, speed) -> None:
    from bench.gguf_export import converter_script
    from bench.shared import folder_bytes, run_tree
    from release.gguf.pinned import PinnedConverterError

    write, read = speed
    merged = workspace / "merge"
    out.mkdir(parents=True, exist_ok=True)
    base_bytes = folder_bytes(model / "base") + folder_bytes(model / "adapter")
    peft_out = out / "peft"
    shutil.rmtree(peft_out, ignore_errors=True)
    command = [sys.executable, "-m", "bench.merge", "--contender", "peft"]
    usage = run_tree([*command, str(model / "base"), str(model / "adapter"), str(peft_out)])
    floor = base_bytes / read + (folder_bytes(peft_out) if peft_out.is_dir() else 0) / write
    table.add(Row("PEFT merge_and_unload+save", usage, floor, note=_failed(usage)))
    shutil.rmtree(peft_out, ignore_errors=True)

    try:
        script = converter_script(None)
    except PinnedConverterError as missing:
        table.add(Row("llama.cpp convert_hf_to_gguf", note=f"left out: {missing}"))
        return
    paths = [str(script.parent / "gguf-py"), str(script.parent)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    files = {}
    for type_name in TYPES:
        target = files[type_name] = out / f"converted-{type_name}.gguf"
        command = [sys.executable, str(script), str(merged), "--outtype", type_name]
        usage = run_tree([*command, "--outfile", str(target)], env=env)
        written = target.stat().st_size if target.is_file() else 0
        floor = folder_bytes(merged) / read + written / write
        table.add(Row(f"llama.cpp convert -> {type_name}", usage, floor, note=_failed(usage)))
    source, target = files["f16"], out / "quantized-q8_0.gguf"
    if source.is_file():
        command = [*SELF, "--child", "quantize", str(source), str(target)]
        usage = run_tree(command, cwd=REPO)
        written = target.stat().st_size if target.is_file() else 0
        floor = source.stat().st_size / read + written / write
        table.add(Row("llama.cpp quantize f16->q8_0", usage, floor, note=_failed(usage)))
    for path in [*files.values(), target]:
        path.unlink(missing_ok=True)


def _failed(usage) -> str:
    return failure(usage) if usage.returncode else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=SIZES, default="3.8b")
    parser.add_argument("--workdir", type=Path, help="default: ~/.cache/model-release/scale")
    parser.add_argument("--no-anchors", action="store_true", help="ours and the floor only")
    parser.add_argument(
        "--types",
        default=",".join(TYPES),
        help="our release's gguf.types, comma-separated (default: %(default)s; the anchors "
        "write these two)",
    )
    parser.add_argument(
        "--anchors-only",
        action="store_true",
        help="the floor and the anchors on the last run's merged model (its stages kept)",
    )
    parser.add_argument("--json-out", type=Path, help="the rows as JSON, rewritten as they come")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        what, *paths = args.child
        if what == "generate":
            generate(Path(paths[1]), paths[0])
        elif what == "quantize":
            quantize(Path(paths[0]), Path(paths[1]))
        elif what == "forward":
            forward(*map(Path, paths))
        return

    from bench.shared import disk_speed, folder_bytes
    from release.core.paths import cache_dir

    workdir = (args.workdir or cache_dir() / "scale").absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    model = prepare(workdir, args.size)
    run = workdir / f"run-{args.size}"
    if args.anchors_only and not (run / "release" / "merge").is_dir():
        parser.error(f"--anchors-only: no merged model in {run}: run without it first")
    if not args.anchors_only:
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir()
    spec = write_spec(run, model, tuple(args.types.split(",")))
    speed = disk_speed(run)
    parameters = _parameters(model / "base")
    header = {
        "size": args.size,
        "parameters": parameters,
        "base_bytes": folder_bytes(model / "base"),
        "disk_write_bytes_per_s": speed[0],
        "disk_read_bytes_per_s": speed[1],
        "cpus": os.cpu_count(),
    }
    print(
        f"base: {GEMMA4.get(args.size, 'Llama')}-shaped {parameters / 1e9:.2f}B parameters, "
        f"{header['base_bytes'] / GB:.2f} GB bf16; LoRA r={RANK} on all seven projections; "
        f"GGUF {args.types.replace(',', ', ')}; disk: write {speed[0] / GB:.2f} GB/s, "
        f"read {speed[1] / GB:.2f} GB/s; {os.cpu_count()} CPUs"
    )
    table = Table(args.json_out, header)
    print(table.title(), flush=True)
    finished = args.anchors_only or run_ours(table, spec, speed, model)
    workspace = run / "release"
    if (workspace / "merge").is_dir():
        if (workspace / "adapter").is_dir():
            run_floor_forward(table, model, workspace)
        if not args.no_anchors:
            run_anchors(table, model, workspace, run / "anchors", speed)
    table.print()
    if not finished:
        raise SystemExit(1)


def _parameters(base: Path) -> int:
    from release.checkpoint.safetensors import parameter_counts

    return parameter_counts(base)[0]


if __name__ == "__main__":
    main()
