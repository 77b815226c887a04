"""What the benchmarks share: random models of real shapes, written tensor by tensor, and
a child process measured as a whole tree.

- ``LlamaShape`` / ``write_llama`` / ``write_lora``: a random bf16 Llama (one tensor in
  memory at a time, so a 8B model is written on a machine with a few GB free) and a
  random LoRA on all seven projections, as PEFT saves one.
- ``build_gguf``: the GGUF stage's work (``build_gguf_files``, export and checks) on a
  model folder, outside a release, as bench.gguf_export and bench.gguf_peak run it.
- ``run_tree``: run a command and measure it with everything it starts: wall, CPU time
  (user + sys of the process and every child it waited for: ``wait4``'s rusage), peak
  resident memory of the tree (the processes' resident sizes summed, sampled, or the
  largest process's own high-water mark ``VmHWM`` when that is more: a sample can miss a
  short peak), bytes it wrote to disk (``ru_oublock``, which Linux counts from the
  processes' write_bytes, the page cache dirtied, children included), the longest time
  the command printed nothing, and the GPUs' peak memory where ``nvidia-smi`` is there.

The parent that runs ``run_tree`` must hold no model: Linux carries a process's
``ru_maxrss`` across fork and exec, which is why the tree's peak is read from ``VmHWM``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SAMPLE_S = 0.2


@dataclass(frozen=True)
class LlamaShape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int

    def config(self, vocab_size: int, **tokens):
        from transformers import LlamaConfig

        config = LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            tie_word_embeddings=False,
            dtype="bfloat16",
            **tokens,
        )
        config.architectures = ["LlamaForCausalLM"]
        return config


def tensor_shapes(config) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, from a model built on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


def write_llama(base: Path, config, tokenizer=None, seed: int = 0) -> dict[str, tuple[int, ...]]:
    """A random bf16 checkpoint of ``config`` in ``base``, tensor by tensor in 500 MB
    shards (with ``tokenizer`` saved beside it); returns the tensors' shapes."""
    shapes = tensor_shapes(config)
    base.mkdir(parents=True)
    config.save_pretrained(base)
    if tokenizer is not None:
        tokenizer.save_pretrained(base)
    write_random(base, shapes, seed)
    return shapes


def write_random(base: Path, shapes: dict[str, tuple[int, ...]], seed: int = 0) -> None:
    """Random bf16 tensors of ``shapes`` in ``base`` in 500 MB shards, 64 MB of float32
    at a time (Gemma-4-E4B's per-layer table is 11 GB in float32): norms 1, everything
    else N(0, 0.02)."""
    import torch

    from release.checkpoint.safetensors import OutTensor, ShardWriter, plan_shards

    plan = [OutTensor(name, "BF16", shape) for name, shape in shapes.items()]
    generator = torch.Generator().manual_seed(seed)

    def rows(shape: tuple[int, ...], norm: bool):
        width = math.prod(shape[1:]) if len(shape) > 1 else 1
        count = shape[0] if shape else 1
        step = max(1, 16 * 2**20 // width)
        for start in range(0, count, step):
            block = (min(step, count - start), width)
            if norm:
                values = torch.ones(block, dtype=torch.bfloat16)
            else:
                values = (torch.randn(block, generator=generator) * 0.02).bfloat16()
            yield values.view(torch.int16).numpy()  # bf16 bits

    with ShardWriter(base, plan_shards(plan, 500 * 10**6)) as writer:
        for name, shape in shapes.items():
            writer.write_parts(name, shape, rows(shape, name.endswith("norm.weight")))


def write_lora(
    adapter: Path, base: Path, shapes: dict[str, tuple[int, ...]], rank: int, seed: int = 1
) -> None:
    """A random LoRA of ``rank`` on every projection of ``shapes``, for ``base``."""
    import torch
    from peft import LoraConfig
    from safetensors.torch import save_file

    adapter.mkdir(parents=True)
    LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=list(TARGETS), task_type="CAUSAL_LM"
    ).save_pretrained(adapter)
    settings = json.loads((adapter / "adapter_config.json").read_text())
    settings["base_model_name_or_path"] = str(base)
    (adapter / "adapter_config.json").write_text(json.dumps(settings))
    generator = torch.Generator().manual_seed(seed)
    lora = {}
    for name, (out, inp) in ((n, s) for n, s in shapes.items() if n.split(".")[-2] in TARGETS):
        module = "base_model.model." + name.removesuffix(".weight")
        lora[f"{module}.lora_A.weight"] = torch.randn((rank, inp), generator=generator) * 0.01
        lora[f"{module}.lora_B.weight"] = torch.randn((out, rank), generator=generator) * 0.01
    save_file(lora, adapter / "adapter_model.safetensors")


def build_gguf(model: Path, out: Path, types: list[str], kept=None):
    """The GGUF stage's work on ``model`` into ``out`` (its events shown nowhere), with
    the reference the evaluate stage kept when ``kept`` is one; its ``GGUFBuild``."""
    from release.gguf.build import build_gguf_files
    from release.gguf.settings import GGUFSettings
    from release.spec.schema import ReleaseSpec
    from tests.support.reporters import SilentReporter

    spec = ReleaseSpec(
        name="bench",
        version="1.0",
        base={"path": str(model)},
        adapter={"path": str(model)},
        workspace=out,
        gguf={"types": types},
    )
    out.mkdir(parents=True, exist_ok=True)
    build = build_gguf_files(GGUFSettings.of(spec), model, out, SilentReporter("gguf"), kept=kept)
    while True:
        try:
            next(build)
        except StopIteration as stop:
            return stop.value


@dataclass
class TreeUsage:
    """One command's cost, its children included."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    written_bytes: int = 0
    longest_silence_s: float = 0.0
    silent_after: str = ""
    """The line printed last before the longest silence (where the time went)."""
    timeline: list[tuple[float, str]] = field(default_factory=list, repr=False)
    """Each line of stdout with the seconds since the start it came at."""
    gpu_peak_bytes: int | None = None
    returncode: int = 0
    stdout: str = field(default="", repr=False)
    stderr_tail: str = field(default="", repr=False)

    def figures(self) -> dict:
        hidden = ("stdout", "stderr_tail", "timeline")
        return {k: v for k, v in asdict(self).items() if k not in hidden}


def run_tree(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run ``command`` to its end and measure it with its whole process tree."""
    import psutil

    usage = TreeUsage()
    with tempfile.TemporaryFile("w+") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        lines: list[str] = []
        last = [started]

        def read() -> None:
            for line in child.stdout:  # type: ignore[union-attr]
                now = time.perf_counter()
                if now - last[0] > usage.longest_silence_s:
                    usage.longest_silence_s = now - last[0]
                    usage.silent_after = lines[-1].strip() if lines else "(the start)"
                last[0] = now
                lines.append(line)
                usage.timeline.append((round(now - started, 2), line.rstrip("\n")))

        done = threading.Event()
        hwm: dict[int, int] = {}

        def sample() -> None:
            root = psutil.Process(child.pid)
            while not done.is_set():
                try:
                    tree = [root, *root.children(recursive=True)]
                except psutil.Error:
                    break
                total = 0
                for process in tree:
                    try:
                        total += process.memory_info().rss
                        hwm[process.pid] = max(hwm.get(process.pid, 0), _vm_hwm(process.pid))
                    except (psutil.Error, OSError):
                        continue
                usage.peak_rss_bytes = max(usage.peak_rss_bytes, total)
                done.wait(SAMPLE_S)

        gpu = _GpuMemory.start()
        threads = [threading.Thread(target=read), threading.Thread(target=sample)]
        for thread in threads:
            thread.start()
        _, status, rusage = os.wait4(child.pid, 0)
        usage.wall_s = time.perf_counter() - started
        done.set()
        for thread in threads:
            thread.join()
        if usage.wall_s + started - last[0] > usage.longest_silence_s:
            usage.longest_silence_s = usage.wall_s + started - last[0]
            usage.silent_after = lines[-1].strip() if lines else "(the start)"
        child.returncode = usage.returncode = os.waitstatus_to_exitcode(status)
        usage.cpu_s = rusage.ru_utime + rusage.ru_stime
        usage.written_bytes = rusage.ru_oublock * 512
        usage.peak_rss_bytes = max(usage.peak_rss_bytes, *hwm.values(), 0)
        usage.gpu_peak_bytes = gpu.stop() if gpu else None
        usage.stdout = "".join(lines)
        stderr.seek(0)
        usage.stderr_tail = stderr.read()[-3000:]
    return usage


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class _GpuMemory:
    """The GPUs' memory in use, summed over the GPUs, logged by nvidia-smi every 0.5 s."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    @classmethod
    def start(cls) -> _GpuMemory | None:
        smi = shutil.which("nvidia-smi")
        if smi is None:
            return None
        command = [smi, "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "500"]
        return cls(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))

    def stop(self) -> int:
        time.sleep(0.6)  # one more reading after the command's end
        self.process.terminate()
        said, _ = self.process.communicate()
        readings = [int(v) for v in said.split() if v.strip().isdigit()]
        return max(readings, default=0) * 2**20  # MiB


def disk_speed(folder: Path, size: int = 512 * 2**20) -> tuple[float, float]:
    """This disk's sequential write and read speed (bytes/s) in ``folder``: ``size``
    bytes written and flushed (fsync), then, once out of the page cache
    (``posix_fadvise`` DONTNEED on the flushed file), read back."""
    block = os.urandom(16 * 2**20)
    path = folder / ".disk-speed"
    try:
        started = time.perf_counter()
        with path.open("wb") as file:
            for _ in range(size // len(block)):
                file.write(block)
            file.flush()
            os.fsync(file.fileno())
        write = size / (time.perf_counter() - started)
        with path.open("rb") as file:
            os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            started = time.perf_counter()
            while file.read(len(block)):
                pass
        read = size / (time.perf_counter() - started)
    finally:
        path.unlink(missing_ok=True)
    return write, read


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
