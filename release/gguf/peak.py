"""The GGUF stage's peak memory, for the preflight: what runs at once, file by file.

The stage writes its files in order (``build._jobs``: f16 first, the quantizer's types
last) and hands each written file to llama.cpp's child, which checks it while the next
file is written. So at any time it holds, beside its own process:

- a writer: the built-in exporter's buffer (two float32 copies of the largest tensor),
  llama.cpp's converter (a Python child with torch, and the same buffer), or llama.cpp's
  quantizer, which maps its f16 source and converts a tensor at a time;
- a check: llama.cpp's child with the file it maps, its KV cache and its logits (three
  copies of a context of logits: llama.cpp's output buffer, llama-cpp-python's
  ``scores``, the array sent back), and the stage reading those logits back;
- where the evaluate stage kept no reference (it is off), the merged model in a child
  of its own, in its checkpoint's dtype, from the stage's start until the first file is
  checked (the first check waits for it: never both).

The peak is the largest of those sums. Pages of one file mapped twice (the quantizer
reading the f16 file llama.cpp is checking) are counted once: the page cache holds them
once. Without llama.cpp, transformers' GGUF loader checks the files, and it holds two
float32 copies of the model (its dequantized state dict and the model built from it).

The constants are measured (bench/gguf_peak.py, on the tiny Llama and SmolLM2-135M);
everything else grows with the model as its files and tensors do.
"""

from __future__ import annotations

from dataclasses import dataclass

LLAMA_CPP_CHILD = 120 * 2**20
"""Python with llama-cpp-python imported, and llama.cpp's own buffers on a probe."""
TORCH_CHILD = 600 * 2**20
"""Python with torch and transformers imported (the reference's child, the converter)."""
PROBE_CONTEXT = 256
"""llama.cpp's context on the probe (``llama_cpp_process``: at least 256 tokens)."""
LOGITS_COPIES = 3
TRANSFORMERS_FP32_MODELS = 2


@dataclass(frozen=True)
class Written:
    """One file the stage writes, in the order it writes them."""

    type: str
    bytes: int
    writer: str
    """"exporter" (ours), "converter" (llama.cpp's script) or "quantizer" (from f16)."""
    checked: bool
    """False for the quantizer's hidden f16 source."""


@dataclass(frozen=True)
class ModelShape:
    """What the peak depends on besides the files."""

    parameters: int
    largest_tensor: int
    """Elements of the largest tensor."""
    vocab: int
    layers: int
    kv_width: int
    """Key and value width of one layer (heads x head size, both), in elements."""
    checkpoint_bytes_per_parameter: int


def writer_bytes(file: Written, shape: ModelShape, f16_source: int) -> int:
    """What writing ``file`` holds: the exporter's buffer, or the quantizer's mapped f16
    source and its buffers."""
    buffer = 2 * shape.largest_tensor * 4
    if file.writer == "quantizer":
        return f16_source + buffer + shape.largest_tensor * 2
    if file.writer == "converter":
        return TORCH_CHILD + buffer
    return buffer


def check_bytes(file: Written, shape: ModelShape) -> int:
    """What llama.cpp's check of ``file`` holds: the file mapped, its KV cache, logits."""
    kv = shape.layers * PROBE_CONTEXT * shape.kv_width * 2  # f16 keys and values
    logits = LOGITS_COPIES * PROBE_CONTEXT * shape.vocab * 4
    return LLAMA_CPP_CHILD + file.bytes + kv + logits


def reference_bytes(shape: ModelShape) -> int:
    """The merged model in its checkpoint's dtype in a child, with a prompt's logits."""
    model = shape.parameters * shape.checkpoint_bytes_per_parameter
    return TORCH_CHILD + model + LOGITS_COPIES * PROBE_CONTEXT * shape.vocab * 4


def stage_peak(
    files: list[Written], shape: ModelShape, *, reference_here: bool, llama_cpp: bool
) -> int:
    """The stage's peak, beside its own process as it starts."""
    if not llama_cpp:
        return TRANSFORMERS_FP32_MODELS * shape.parameters * 4 + 2 * shape.largest_tensor * 4
    f16 = next((f.bytes for f in files if f.type == "f16"), 0)
    peak = 0
    checking: Written | None = None
    reference = reference_bytes(shape) if reference_here else 0
    for file in files:
        writing = writer_bytes(file, shape, f16)
        if checking is not None:
            held = check_bytes(checking, shape)
            if file.writer == "quantizer" and checking.type == "f16":
                held -= checking.bytes  # the same pages
            peak = max(peak, writing + held)
        else:  # the reference's child runs until the first file is checked
            peak = max(peak, writing + reference)
        if file.checked:
            checking = file
    if checking is not None:
        peak = max(peak, check_bytes(checking, shape))
    return max(peak, reference)
