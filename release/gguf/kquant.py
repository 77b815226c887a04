"""K-quants through llama.cpp's own quantizer (llama-cpp-python's bindings).

llama.cpp picks a type per tensor for its K-quant mixes (q4_k_m keeps some attention
and FFN tensors at q6_k…); the rules live in its C++ and change with it, so we do not
reimplement them: our f16 file goes in, llama.cpp's quantizer writes the result.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from release.core.quiet import held_stderr, last_line
from release.gguf.formats import GGUFFormat

EXTRA = "llama-cpp"
INSTALL_HINT = f"pip install 'model-release[{EXTRA}]' (builds llama-cpp-python, ~7 minutes)"


class QuantizerMissing(RuntimeError):
    """llama-cpp-python is not installed."""


class QuantizeFailed(RuntimeError):
    """llama.cpp's quantizer returned an error."""


def llama_cpp_version() -> str | None:
    try:
        import llama_cpp
    except ImportError:
        return None
    return llama_cpp.__version__


def quantize_with_llama_cpp(source: Path, target: Path, fmt: GGUFFormat) -> None:
    """Quantize the GGUF ``source`` (f16 or better) into ``target`` as ``fmt``."""
    try:
        import llama_cpp
    except ImportError:
        raise QuantizerMissing(f"{fmt.name} needs llama.cpp's quantizer") from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(fmt.file_type)
    params.nthread = os.cpu_count() or 1
    with held_stderr() as chatter:
        status = llama_cpp.llama_model_quantize(
            str(source).encode(), str(target).encode(), ctypes.byref(params)
        )
    if status != 0:
        said = last_line(chatter)
        raise QuantizeFailed(
            f"llama.cpp could not quantize {source.name} to {fmt.name}"
            + (f" ({said})" if said else "")
        )
