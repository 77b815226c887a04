"""A base in bitsandbytes' 4-bit (NF4) format, written here without bitsandbytes, as a
QLoRA base or a pre-quantized ``-bnb-4bit`` repo has it on the Hub.

What transformers saves for a ``Linear4bit``: ``….weight`` as uint8 holding two 4-bit
codes per byte, shape ``[numel / 2, 1]``; ``….weight.absmax`` (float32, one per block
of 64); ``….weight.quant_map`` (the 16 NF4 levels); and
``….weight.quant_state.bitsandbytes__nf4``, the quant state as JSON bytes; config.json
carries the ``quantization_config``. Other tensors stay as they were.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

NF4 = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]  # fmt: skip
"""bitsandbytes' NF4 levels (``bitsandbytes.functional.get_4bit_type('nf4')``)."""
BLOCK = 64
QUANTIZATION_CONFIG = {
    "quant_method": "bitsandbytes",
    "load_in_4bit": True,
    "load_in_8bit": False,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_compute_dtype": "bfloat16",
    "bnb_4bit_use_double_quant": False,
    "bnb_4bit_quant_storage": "uint8",
}


def _nf4(weight: np.ndarray, name: str) -> dict[str, np.ndarray]:
    flat = weight.astype(np.float32).reshape(-1, BLOCK)
    absmax = np.abs(flat).max(axis=1)
    scaled = flat / np.where(absmax == 0, 1, absmax)[:, None]
    codes = np.abs(scaled[..., None] - np.array(NF4, np.float32)).argmin(-1).astype(np.uint8)
    codes = codes.reshape(-1, 2)
    state = {
        "quant_type": "nf4",
        "blocksize": BLOCK,
        "dtype": "bfloat16",
        "shape": list(weight.shape),
    }
    return {
        name: (codes[:, 0] << 4 | codes[:, 1]).reshape(-1, 1),
        f"{name}.absmax": absmax.astype(np.float32),
        f"{name}.quant_map": np.array(NF4, np.float32),
        f"{name}.quant_state.bitsandbytes__nf4": np.frombuffer(
            json.dumps(state).encode(), np.uint8
        ).copy(),
    }


def make_bnb_4bit(source: Path, path: Path, *, keep_config: bool = True) -> Path:
    """``source`` with the language model's 2-D projection weights packed as NF4;
    ``keep_config=False`` leaves config.json as it was (a stripped quantization_config)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, path)
    tensors = load_file(path / "model.safetensors")
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.endswith("_proj.weight") and "_tower" not in name:
            packed = _nf4(tensor.float().numpy(), name)
            out |= {key: torch.from_numpy(value) for key, value in packed.items()}
        else:
            out[name] = tensor
    save_file(out, path / "model.safetensors", metadata={"format": "pt"})
    if keep_config:
        config = json.loads((path / "config.json").read_text())
        config["quantization_config"] = QUANTIZATION_CONFIG
        (path / "config.json").write_text(json.dumps(config, indent=2))
    return path
