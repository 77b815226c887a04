"""How the sanity eval holds a model: which dtype, where, and one model at a time.

On accelerators a model loads in its checkpoint's dtype with ``device_map="auto"``, so
accelerate spreads one larger than a GPU over all the visible GPUs. On the CPU it runs
in float32; a bf16 checkpoint too big for float32 in RAM runs in bf16, chosen by
``release.evaluate.needs.choose_plan``. Both separate a right merge from a broken one
(the reference is PEFT's merge, stored as the merged model is: bench/equivalence.py,
tests/test_evaluate.py, tests/test_evaluate_trained.py).

A checkpoint converted on load (bf16 into float32) is read, not mapped
(``_read_not_mapped``), so its pages are not held beside the float32 weights.

This module reads only safetensors headers until ``load_model`` is called, so the
preflight (``release.evaluate.needs``) can plan without torch.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.checkpoint.safetensors import checkpoint_dtype, parameter_counts
from release.core.events import Event, Reporter
from release.core.quiet import held_stderr
from release.core.waiting import ticking

_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass(frozen=True)
class LoadPlan:
    dtype: str
    """A torch dtype's name: "bfloat16", "float16" or "float32"."""
    gpus: int
    """GPUs the model spreads over (``device_map="auto"``); 0 on the CPU."""

    @property
    def bytes_per_parameter(self) -> int:
        return _BYTES[self.dtype]

    @property
    def device(self) -> str:
        """What the manifest records as the eval's device."""
        if self.gpus == 0:
            return f"cpu ({self.dtype})"
        return f"cuda ({self.gpus} GPU{'s' if self.gpus > 1 else ''}, {self.dtype}, auto)"


def plan_loading(base_dir: Path, gpus: int) -> LoadPlan:
    """The base's dtype on accelerators, float32 on the CPU. Base and merged model load
    alike, so their logits differ only by the merge."""
    return LoadPlan(checkpoint_dtype(base_dir), gpus) if gpus else LoadPlan("float32", 0)


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def load_model(model_dir: Path, plan: LoadPlan, *, trust_remote_code: bool):
    """A causal LM from ``model_dir`` as ``plan`` says, ready for inference."""
    import torch
    from transformers import AutoModelForCausalLM

    placement = {"device_map": "auto"} if plan.gpus else {}
    converted = not plan.gpus and checkpoint_dtype(model_dir) != plan.dtype
    with _read_not_mapped() if converted else nullcontext():
        model = AutoModelForCausalLM.from_pretrained(
            model_dir,
            dtype=getattr(torch, plan.dtype),
            trust_remote_code=trust_remote_code,
            **placement,
        )
    return model.eval()


_ELEMENT_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def load_reporting(
    report: Reporter, what: str, model_dir: Path, plan: LoadPlan, *, trust_remote_code: bool
) -> Generator[Event, None, Any]:
    """``load_model`` in a thread of its own, reporting every few seconds
    (``core.waiting.ticking``) the memory the load has filled against the model's size
    in ``plan``'s dtype: a 4B model in float32 is a minute or more of reading and
    converting on a CPU, which transformers reports only to a bar of its own (held, as
    all its output)."""
    import psutil

    expected = parameter_counts(model_dir)[0] * _ELEMENT_BYTES.get(plan.dtype, 4)

    def load():
        with held_stderr():  # transformers' bars and warnings are not ours to print
            return load_model(model_dir, plan, trust_remote_code=trust_remote_code)

    process = psutil.Process()
    start = process.memory_info().rss

    def filled(_seconds: float) -> Event:
        grown = min(max(process.memory_info().rss - start, 0), expected)
        return report.progress(grown, expected, "bytes", what)

    yield report.progress(0, expected, "bytes", what)
    model = yield from ticking(load, filled)
    yield report.progress(expected, expected, "bytes", what)
    return model


@contextmanager
def _read_not_mapped() -> Iterator[None]:
    """Have transformers read the checkpoint's tensors with ``pread`` instead of mapping
    its files, for a load that converts them (a bf16 checkpoint into float32).

    transformers maps each safetensors file and converts tensor by tensor, but the
    mapping lasts the whole load, and its pages count in RSS while it does: the peak held
    the float32 weights and the whole checkpoint (bench model: 3727 MiB against the naive
    way's 5824). Read with ``pread``, a tensor's 16-bit bytes are a temporary freed once
    it is converted, and the file's pages stay in the page cache, outside the process:
    the peak is the float32 weights and what the loader's threads hold in flight. The
    tensors are the same (tests/test_evaluate_loading.py). transformers picks the
    backend itself (``pread`` only on Windows and MPS) and takes no option for it, so its
    module's ``safe_open`` is swapped for the load; a transformers or safetensors
    without them loads as before."""
    from safetensors import safe_open
    from transformers import modeling_utils

    if getattr(modeling_utils, "safe_open", None) is not safe_open or "backend" not in str(
        safe_open.__text_signature__
    ):
        yield
        return

    def read(filename, framework, device="cpu", backend=None):
        return safe_open(filename, framework=framework, device=device, backend="pread")

    modeling_utils.safe_open = read
    try:
        yield
    finally:
        modeling_utils.safe_open = safe_open


def steady_heap() -> None:
    """Make the CPU peak one model's, the same on every run (called before the first load).

    glibc serves allocations under its mmap threshold from heaps that keep freed memory,
    and it raises that threshold as large blocks are freed: once base + adapter is gone,
    its layers' tensors stayed in the heaps as holes that the merged model half reused,
    and the peak moved from run to run (SmolLM2 float32: 1.02 to 1.08 GB). A fixed
    threshold (glibc's own starting value) gives every tensor its own mapping, returned
    to the system when the tensor is freed: the peak measured 848 MiB on two runs."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def release_memory() -> None:
    """Give a freed model's memory back before the next one loads (``malloc_trim``
    returns what small allocations left free in the heaps)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


_M_MMAP_THRESHOLD = -3
"""mallopt's parameter number, from glibc's malloc.h."""


def _glibc():
    """The C library when it is glibc (mallopt and malloc_trim are its own), else None."""
    import ctypes
    import ctypes.util
    import platform

    name = ctypes.util.find_library("c")
    if platform.libc_ver()[0] != "glibc" or name is None:
        return None
    return ctypes.CDLL(name)
