"""How lm-eval runs eval.tasks on the GPUs there are: the one rule, from the model's size
and each GPU's memory.

lm-eval 0.4.13's README gives the forms:

- hf, the model fits one GPU, several GPUs: data parallel, one full copy per GPU,
  through accelerate's launcher (``accelerate launch --multi_gpu --num_processes N -m
  lm_eval …``): N GPUs, N times faster;
- hf, the model does not fit one GPU: one process, ``parallelize=True`` (accelerate's
  device map spreads the one model over all the GPUs, and what does not fit to the CPU);
- vllm: ``tensor_parallel_size`` = the GPUs; when the model fits one GPU and ray is
  installed (lm-eval runs vLLM's data parallel replicas as ray actors),
  ``data_parallel_size`` = the GPUs with one GPU per replica instead.

"Fits" leaves room for what a batch holds besides the weights (activations, the KV
cache): the weights may take ``FIT_SHARE`` of the smallest GPU's memory.

Pure data in, data out: the stage measures the GPUs (``gpu_memory``) and the weights.
"""

from __future__ import annotations

import sys
from typing import Literal

from pydantic import ConfigDict

from release.core.facts import Facts

FIT_SHARE = 0.8
"""The share of one GPU's memory the weights may take for the model to count as fitting
it (vLLM itself reserves 0.9 of a GPU by default, and its KV cache lives inside that)."""

Mode = Literal["cpu", "one GPU", "data parallel", "model parallel", "tensor parallel"]


class Launch(Facts):
    """How the harness's child runs: its launcher, its extra model arguments, and why
    (the evaluate stage records it as ``HarnessFacts.launch``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mode: Mode
    processes: int = 1
    """Processes accelerate's launcher starts (1: no launcher)."""
    model_args: tuple[str, ...] = ()
    """``key=value`` pairs appended to lm-eval's --model_args."""
    reason: str = ""

    def prefix(self) -> list[str]:
        """The command up to lm-eval's module: accelerate's launcher for several
        processes, else this Python."""
        if self.processes == 1:
            return [sys.executable, "-m", "lm_eval"]
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
        return [*launcher, "--num_processes", str(self.processes), "-m", "lm_eval"]

    def describe(self) -> str:
        """The launch as the manifest and the log say it."""
        extra = f" ({', '.join(self.model_args)})" if self.model_args else ""
        processes = f", {self.processes} processes" if self.processes > 1 else ""
        return f"{self.mode}{processes}{extra}: {self.reason}"


def choose_launch(
    backend: str, gpus: int, gpu_bytes: int, weight_bytes: int, *, ray: bool = False
) -> Launch:
    """The launch for ``weight_bytes`` of weights on ``gpus`` GPUs of ``gpu_bytes`` each
    (the smallest one's memory); ``ray``: whether ray is installed (vLLM's data parallel)."""
    if gpus == 0:
        return Launch(mode="cpu", reason="no GPU")
    fits = weight_bytes <= FIT_SHARE * gpu_bytes
    size = f"{weight_bytes / 2**30:.1f} GiB of weights"
    room = f"{FIT_SHARE:.0%} of one GPU's {gpu_bytes / 2**30:.1f} GiB"
    fit_reason = f"{size} fit in {room}" if fits else f"{size} exceed {room}"
    if backend == "vllm":
        if fits and gpus > 1 and ray:
            args = ("tensor_parallel_size=1", f"data_parallel_size={gpus}")
            return Launch(
                mode="data parallel", model_args=args, reason=f"{fit_reason}: one replica per GPU"
            )
        reason = fit_reason if fits or gpus > 1 else f"{fit_reason}, and there is one GPU"
        if fits and gpus > 1:
            reason += " (data parallel needs ray: pip install ray)"
        return Launch(
            mode="tensor parallel", model_args=(f"tensor_parallel_size={gpus}",), reason=reason
        )
    if fits and gpus == 1:
        return Launch(mode="one GPU", reason=fit_reason)
    if fits:
        return Launch(
            mode="data parallel", processes=gpus, reason=f"{fit_reason}: one copy per GPU"
        )
    return Launch(mode="model parallel", model_args=("parallelize=True",), reason=fit_reason)


def gpu_memory() -> int:
    """The smallest visible GPU's total memory in bytes (0 without a GPU)."""
    import torch

    if not torch.cuda.is_available():
        return 0
    count = torch.cuda.device_count()
    return min((torch.cuda.get_device_properties(i).total_memory for i in range(count)), default=0)
