"""llama.cpp runs a GGUF in a child process, so its crash is a one-line error, not ours.

llama.cpp meets a layout it does not accept with ``GGML_ASSERT`` (abort), and some
llama-cpp-python builds segfault on some CPUs; either would take the whole release down
with a core dump. So each load runs in ``python -m release.gguf.llama_cpp_process``: the
parent writes the request (the file, the probe's token ids) as JSON, the child writes
the logits (``.npy``) and its answers back, and the parent turns a signal or a non-zero
exit into ``LlamaCppCrashed`` quoting the child's last stderr line (llama.cpp's assert).
The child stops greedy generation on every end-of-generation token llama.cpp knows
(EOS, and end of turn: Gemma's ``<turn|>``), as a chat front end does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHILD_TIMEOUT_S = 900


class LlamaCppCrashed(RuntimeError):
    """llama.cpp failed to load or run a file, in the child process."""


@dataclass(frozen=True)
class Request:
    path: str
    prompts: list[list[int]]
    texts: list[str]
    smoke_ids: list[int]
    smoke_tokens: int
    vocab_rows: int
    mmproj: str | None = None


@dataclass(frozen=True)
class LlamaCppRun:
    logits: list[np.ndarray]
    answer: list[int]
    tokenizer_agrees: bool
    stop_ids: list[int]
    """The end-of-generation ids llama.cpp reads from the file (EOS, EOT…)."""
    mmproj_loaded: bool | None


def run_llama_cpp(request: Request) -> LlamaCppRun:
    """Run ``request`` in a child process; a crash or failure raises LlamaCppCrashed."""
    with tempfile.TemporaryDirectory(prefix="llama-cpp-run-") as work:
        folder = Path(work)
        (folder / "request.json").write_text(json.dumps(request.__dict__), encoding="utf-8")
        command = [sys.executable, "-m", "release.gguf.llama_cpp_process", str(folder)]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT_S,
                check=False,
                env=child_env(),
            )
        except subprocess.TimeoutExpired:
            raise LlamaCppCrashed(f"no answer within {CHILD_TIMEOUT_S} s") from None
        result = folder / "result.json"
        if done.returncode != 0 or not result.is_file():
            raise LlamaCppCrashed(last_words(done.returncode, done.stderr))
        data = json.loads(result.read_text(encoding="utf-8"))
        logits = [np.load(folder / f"logits-{i}.npy") for i in range(len(request.prompts))]
    return LlamaCppRun(
        logits, data["answer"], data["tokenizer_agrees"], data["stop_ids"], data["mmproj_loaded"]
    )


def child_env() -> dict[str, str]:
    """The child's environment: OpenMP threads that sleep while they wait.

    llama-cpp-python builds with OpenMP, whose threads spin at each barrier. On a machine
    whose cores other processes also use, two spinning threads wait on each other for
    most of their time slices: the probe prompts took 20-110 s with 2 threads and 2-3 s
    with one on a loaded 2-core machine; with ``OMP_WAIT_POLICY=PASSIVE`` 2 threads take
    what one does (and scale on an idle machine). A policy the user set is kept."""
    return {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}


def _threads() -> int:
    """The cores this process may run on, up to 8 (more gives little on a probe)."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


def last_words(code: int, stderr: str, who: str = "llama.cpp") -> str:
    """What a child that failed said last (an assert, an error), with how it ended."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    asserted = [line for line in lines if "GGML_ASSERT" in line or "error" in line.lower()]
    said = (asserted or lines or ["no output"])[-1]
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else code
        return f"{who} crashed ({name}): {said}"
    return f"{who} failed (exit {code}): {said}"


def _child(folder: Path) -> None:
    import llama_cpp

    request = Request(**json.loads((folder / "request.json").read_text(encoding="utf-8")))
    longest = max(len(ids) for ids in [*request.prompts, request.smoke_ids])
    llm = llama_cpp.Llama(
        request.path,
        n_ctx=max(256, longest + request.smoke_tokens),
        logits_all=True,
        verbose=False,
        n_threads=_threads(),
    )
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    for index, ids in enumerate(request.prompts):
        llm.reset()
        llm.eval(ids)
        np.save(
            folder / f"logits-{index}.npy", np.array(llm.scores[: len(ids), : request.vocab_rows])
        )
    agrees = all(
        llm.tokenize(text.encode(), add_bos=True, special=False) == ids
        for text, ids in zip(request.texts, request.prompts, strict=True)
    )
    stop_ids = [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    answer: list[int] = []
    for token in llm.generate(request.smoke_ids, temp=0.0, top_k=1, reset=True):
        if token in stop_ids or len(answer) == request.smoke_tokens:
            break
        answer.append(token)
    mmproj_loaded = _load_mmproj(request.mmproj, llm) if request.mmproj else None
    llm.close()
    result = {
        "answer": answer,
        "tokenizer_agrees": agrees,
        "stop_ids": stop_ids,
        "mmproj_loaded": mmproj_loaded,
    }
    (folder / "result.json").write_text(json.dumps(result), encoding="utf-8")


def _load_mmproj(path: str, llm) -> bool:
    """llama.cpp's multimodal loader (mtmd) opens the projector beside the text model."""
    from llama_cpp import mtmd_cpp

    params = mtmd_cpp.mtmd_context_params_default()
    params.use_gpu = False
    params.print_timings = False
    params.n_threads = _threads()
    context = mtmd_cpp.mtmd_init_from_file(path.encode(), llm.model, params)
    if not context:
        raise LlamaCppCrashed(f"llama.cpp's multimodal loader refused {path}")
    mtmd_cpp.mtmd_free(context)
    return True


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
