"""The reference where no stage holds the merged model: load it, write it, let it go.

A release whose evaluate stage is off has no run of the merged model to keep the
reference from, so the GGUF stage has it computed here (in a child process of its own:
``release.gguf.reference_process``): the merged model loaded once, in its checkpoint's
dtype (no float32 copy of a bf16 model), on the GPUs where there are some
(``device_map="auto"`` spreads a model larger than one over all of them), else on the
CPU; its reference written; the model freed with the process.
"""

from __future__ import annotations

from pathlib import Path

from release.checkpoint.safetensors import checkpoint_dtype, parameter_counts
from release.core.relay import finish
from release.reference.facts import ReferenceFacts
from release.reference.heldout import HeldoutText
from release.reference.record import write_reference


def compute_reference(
    model_dir: Path,
    folder: Path,
    *,
    model_id: str | None = None,
    trust_remote_code: bool = False,
    heldout: HeldoutText | None = None,
) -> ReferenceFacts:
    """The reference of the model in ``model_dir`` (on the probe and ``heldout``),
    written into ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = checkpoint_dtype(model_dir)
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    placement = {"device_map": "auto"} if gpus else {}
    if heldout is not None:
        heldout = heldout.read_by(parameter_counts(model_dir)[0], gpus)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir,
        dtype=getattr(torch, dtype),
        trust_remote_code=trust_remote_code,
        **placement,
    ).eval()
    plural = "s" if gpus > 1 else ""
    device = f"cuda ({gpus} GPU{plural}, {dtype}, auto)" if gpus else f"cpu ({dtype})"
    return finish(
        write_reference(
            model, tokenizer, folder, model_id=model_id, dtype=dtype, device=device, heldout=heldout
        )
    )
