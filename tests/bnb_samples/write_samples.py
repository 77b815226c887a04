"""Write the bitsandbytes samples in this folder with bitsandbytes itself (run by hand,
not by the tests; CPU is enough):

    pip install --no-deps --target /tmp/bnb bitsandbytes==0.50.2
    PYTHONPATH=/tmp/bnb python tests/bnb_samples/write_samples.py

Each ``<quant_type>[-double].safetensors`` holds one 4-bit weight as transformers saves a
``Linear4bit`` (``proj.weight`` packed, its quant state beside it, from
``QuantState.as_dict(packed=True)``) and ``expected.proj.weight``, what bitsandbytes'
own ``dequantize_4bit`` returns for it: the reference our dequantization is checked on.
"""

from pathlib import Path

import bitsandbytes
import bitsandbytes.functional as F
import torch
from safetensors.torch import save_file

HERE = Path(__file__).parent

torch.manual_seed(0)
weight = (torch.randn(48, 64) * 0.05).to(torch.bfloat16)
weight[3, :5] = torch.tensor([0.0, 1.5, -2.0, 1e-4, -1e-4], dtype=torch.bfloat16)  # outliers, ~0
for quant_type in ("nf4", "fp4"):
    for double in (False, True):
        packed, state = F.quantize_4bit(
            weight, blocksize=64, quant_type=quant_type, compress_statistics=double
        )
        tensors = {"proj.weight": packed}
        tensors |= {f"proj.weight.{k}": v for k, v in state.as_dict(packed=True).items()}
        tensors["expected.proj.weight"] = F.dequantize_4bit(packed, state)
        name = f"{quant_type}{'-double' if double else ''}.safetensors"
        save_file(tensors, HERE / name, metadata={"bitsandbytes": bitsandbytes.__version__})
        print(name, {k: (tuple(v.shape), str(v.dtype)) for k, v in tensors.items()})
