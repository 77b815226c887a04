"""The GGUF stage's peak memory, for the preflight: what runs at once, file by file.

The stage writes its files in order (``build._jobs``: f16 first, the quantizer's types
last) and hands each written file to llama.cpp's child, which checks it while the next
file is written. So at any time it holds, beside its own process:

- a writer: the built-in exporter's buffer (two float32 copies of the largest tensor it
  holds whole: a large matrix goes a block of rows at a time, ``writer.by_rows``),
  llama.cpp's converter (a Python child with torch, and two float32 copies of the
  largest tensor), or llama.cpp's quantizer: its f16 source, mapped and read once
  through, and a tensor's buffers (the same two copies);
- a check: llama.cpp's child with the file it maps, its KV cache and a context of
  logits; the stage reads those logits back once the child let the file go;
- where the evaluate stage kept no reference (it is off), the merged model in a child
  of its own, in its checkpoint's dtype, from the stage's start until the first file is
  checked (the first check waits for it: never both);
- after every file is written and checked, with eval.tasks.gguf, lm-eval's child on one
  file at a time (``release.evaluate.llama_cpp_lm``): the file mapped, and for a context
  as long as its longest request a KV cache and every position's logits.

The peak is the largest of those sums, with one exception: the quantizer's source is
counted beside the check before it as the larger of the two, not their sum. The check
(one pass over a few hundred tokens) ends while the quantizer is early in its source
(it passes over every weight), and the source's pages are the file's, clean: under
pressure the kernel drops the ones already read instead of failing. Without
llama.cpp, transformers' GGUF loader checks the files, and it holds two float32 copies
of the model (its dequantized state dict and the model built from it).

The constants are measured (bench/gguf_peak.py, SmolLM2-135M: README "Runners");
everything else grows with the model as its files, its largest tensor, its vocabulary
and its KV cache do.
"""

from __future__ import annotations

from dataclasses import dataclass

from release.reference.heldout import CHUNK_TOKENS
from release.reference.probe import PROBE

LLAMA_CPP_CHILD = 40 * 2**20
"""Python with numpy and llama-cpp-python imported (measured: 40 MiB)."""
TORCH_CHILD = 400 * 2**20
"""Python with torch and transformers imported (251 MiB), a tokenizer and a forward
pass's buffers (the reference's child on SmolLM2-135M: 747 MiB with its 257 MiB model
and two contexts of logits)."""
CHECK_CONTEXT = CHUNK_TOKENS + PROBE.smoke_tokens
"""llama.cpp's context in the check (``llama_cpp_process._check``: the longest of the
probe prompts and the held-out chunks, and the smoke answer's tokens), every position's
logits kept. It was counted as the probe's 256 tokens, short of the held-out chunk: the
estimate read 16% under the peak in a fresh-clone run (480 MiB against 574)."""
TRANSFORMERS_FP32_MODELS = 2
BENCHMARK_CHILD = 400 * 2**20
"""lm-eval's child on a GGUF file (``release.evaluate.llama_cpp_lm``) besides the file,
its KV cache and logits: Python with lm-eval, its tasks and llama-cpp-python."""
BENCHMARK_CONTEXT = 2048
"""The context counted for lm-eval's child (or the model's own, where shorter): its
context grows to its longest request, which the preflight cannot know without building
the tasks; 2048 tokens holds the common tasks' few-shot prompts (lm-eval's hf model's
own default length). A task with longer requests holds more."""
LLAMA_CPP_BATCH = 512
"""Tokens llama.cpp runs at once (llama-cpp-python's ``n_batch``): the logits it keeps
of one batch, besides the context's."""


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
    exporter_tensor: int
    """Elements the built-in exporter holds at once: its largest tensor held whole, or a
    block of rows (``writer.held_elements``); the largest tensor where it does not write."""
    vocab: int
    layers: int
    kv_width: int
    """Key and value width of one layer (heads x head size, both), in elements."""
    checkpoint_bytes_per_parameter: int
    context: int = 0
    """The model's training context (0: unknown)."""


def _buffer(shape: ModelShape, writer: str = "converter") -> int:
    """Two float32 copies of what ``writer`` holds of one tensor."""
    return 2 * (shape.exporter_tensor if writer == "exporter" else shape.largest_tensor) * 4


def _logits(shape: ModelShape) -> int:
    return CHECK_CONTEXT * shape.vocab * 4


def check_bytes(file: Written, shape: ModelShape) -> int:
    """What llama.cpp's check of ``file`` holds: the file mapped, its KV cache, logits."""
    kv = shape.layers * CHECK_CONTEXT * shape.kv_width * 2  # f16 keys and values
    return LLAMA_CPP_CHILD + file.bytes + kv + _logits(shape)


def benchmark_bytes(file: Written, shape: ModelShape) -> int:
    """What lm-eval's child holds running eval.tasks on ``file``: the file mapped, and
    for ``BENCHMARK_CONTEXT`` tokens its KV cache and every position's logits
    (llama-cpp-python's ``logits_all``), with llama.cpp's logits of a batch."""
    context = min(BENCHMARK_CONTEXT, shape.context) if shape.context else BENCHMARK_CONTEXT
    kv = shape.layers * context * shape.kv_width * 2  # f16 keys and values
    logits = (context + LLAMA_CPP_BATCH) * shape.vocab * 4
    return BENCHMARK_CHILD + file.bytes + kv + logits


HELDOUT_CHUNK_COPIES = 7
"""Float32 copies of one held-out chunk's logits the reference's child holds at once: the
model's output, its float32 copy, and what keeping its top k takes (the negated logits
and argpartition's int64 indices, two copies' worth). Measured with the copies' sum:
SmolLM2-135M's eval-off stage grew 1,516 MB (PSS), 823 MB before the chunks were kept."""


def reference_bytes(shape: ModelShape) -> int:
    """The merged model in its checkpoint's dtype in a child, with a held-out chunk's
    logits and what keeping their top k holds."""
    model = shape.parameters * shape.checkpoint_bytes_per_parameter
    chunk = CHUNK_TOKENS * shape.vocab * 4
    return TORCH_CHILD + model + HELDOUT_CHUNK_COPIES * chunk


def _overlap(writing: Written, checking: Written | None, shape: ModelShape, f16: int) -> int:
    """What writing ``writing`` holds while ``checking`` (the file before) is checked."""
    held = check_bytes(checking, shape) if checking is not None else 0
    if writing.writer == "quantizer":
        return _buffer(shape) + max(f16, held)
    if writing.writer == "converter":
        return TORCH_CHILD + _buffer(shape) + held
    return _buffer(shape, "exporter") + held


def stage_peak(
    files: list[Written],
    shape: ModelShape,
    *,
    reference_here: bool,
    llama_cpp: bool,
    benchmarked: tuple[str, ...] = (),
) -> int:
    """The stage's peak, beside its own process as it starts; ``benchmarked``: the types
    whose files run eval.tasks after the checks (eval.tasks.gguf)."""
    if not llama_cpp:
        return TRANSFORMERS_FP32_MODELS * shape.parameters * 4 + _buffer(
            shape, files[0].writer if files else "exporter"
        )
    f16 = next((f.bytes for f in files if f.type == "f16"), 0)
    reference = reference_bytes(shape) if reference_here else 0
    peak = reference
    checking: Written | None = None
    for file in files:
        peak = max(peak, _overlap(file, checking, shape, f16))
        if checking is None:  # the reference's child runs until the first check
            peak = max(peak, _overlap(file, None, shape, f16) + reference)
        if file.checked:
            checking = file
    if checking is not None:
        peak = max(peak, check_bytes(checking, shape))
    benchmarks = [benchmark_bytes(file, shape) for file in files if file.type in benchmarked]
    return max([peak, *benchmarks])
