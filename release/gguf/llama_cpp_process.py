"""llama.cpp runs the GGUF files in a child process, so its crash is a one-line error.

llama.cpp meets a layout it does not accept with ``GGML_ASSERT`` (abort), and some
llama-cpp-python builds segfault on some CPUs; either would take the whole release down
with a core dump. So the loads run in ``python -m release.gguf.llama_cpp_process``, one
child for all of a stage's files (``LlamaCppChild``, on ``child.LineChild``): it imports
llama-cpp-python once, while the export writes, then loads each file in turn as the
parent asks (the file, the probe's token ids, as a JSON line), writes the logits
(``.npy``) and answers its findings. A signal or a non-zero exit becomes
``LlamaCppCrashed`` quoting the child's last stderr line since that file's request
(llama.cpp's assert). The child stops greedy generation on every end-of-generation
token llama.cpp knows (EOS, and end of turn: Gemma's ``<turn|>``), as a chat front end
does.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from release.gguf.child import ChildDied, LineChild, serve

CHILD_TIMEOUT_S = 900
"""Per file: a load and the probe take seconds on the models a CPU can check."""


class LlamaCppCrashed(RuntimeError):
    """llama.cpp failed to load or run a file, in the child process."""


@dataclass(frozen=True)
class Request:
    path: str
    prompts: list[list[int]]
    texts: list[str]
    smoke_ids: list[int]
    smoke_tokens: int
    mmproj: str | None = None


@dataclass(frozen=True)
class LlamaCppRun:
    logits: list[np.ndarray]
    answer: list[int]
    answer_text: str
    """The answer as llama.cpp's own detokenizer writes it from the file's vocabulary."""
    tokenizer_agrees: bool
    stop_ids: list[int]
    """The end-of-generation ids llama.cpp reads from the file (EOS, EOT…)."""
    mmproj_loaded: bool | None


class LlamaCppChild:
    """One llama.cpp child for many files; started on creation (its import runs while
    the caller does other work), a fresh one after a crash. ``send`` hands it a file
    and returns at once; ``receive`` waits for what it found (one file at a time)."""

    def __init__(self) -> None:
        self._child: LineChild | None = LineChild(__name__, "llama.cpp")
        self._sent: tuple[Request, tempfile.TemporaryDirectory] | None = None

    def send(self, request: Request) -> None:
        assert self._sent is None, "one file at a time"
        if self._child is None:
            self._child = LineChild(__name__, "llama.cpp")
        work = tempfile.TemporaryDirectory(prefix="llama-cpp-run-")
        self._sent = (request, work)
        self._child.send({"out": work.name, **asdict(request)})

    def receive(self) -> LlamaCppRun:
        """What the child found in the file sent last; LlamaCppCrashed if it died."""
        assert self._sent is not None and self._child is not None
        (request, work), self._sent = self._sent, None
        with work:
            try:
                data = self._child.receive(CHILD_TIMEOUT_S)
            except ChildDied as died:
                self.close()
                raise LlamaCppCrashed(str(died)) from None
            folder = Path(work.name)
            logits = [np.load(folder / f"logits-{i}.npy") for i in range(len(request.prompts))]
        return LlamaCppRun(
            logits,
            data["answer"],
            data["answer_text"],
            data["tokenizer_agrees"],
            data["stop_ids"],
            data["mmproj_loaded"],
        )

    def run(self, request: Request) -> LlamaCppRun:
        """Load and probe ``request.path``; a crash or failure raises LlamaCppCrashed."""
        self.send(request)
        return self.receive()

    def close(self) -> None:
        if self._sent is not None:
            self._sent[1].cleanup()
            self._sent = None
        if self._child is not None:
            self._child.close()
            self._child = None

    def __enter__(self) -> LlamaCppChild:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def run_llama_cpp(request: Request) -> LlamaCppRun:
    """One file in a child of its own."""
    with LlamaCppChild() as child:
        return child.run(request)


def _threads() -> int:
    """The cores this process may run on, up to 8 (more gives little on a probe)."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


def _check(message: dict) -> dict:
    """The child's work on one file: logits into ``message["out"]``, findings back."""
    import llama_cpp

    folder = Path(message.pop("out"))
    request = Request(**message)
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
        np.save(folder / f"logits-{index}.npy", np.array(llm.scores[: len(ids)]))
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
    text = llm.detokenize(answer).decode("utf-8", errors="replace")
    mmproj_loaded = _load_mmproj(request.mmproj, llm) if request.mmproj else None
    llm.close()
    return {
        "answer": answer,
        "answer_text": text,
        "tokenizer_agrees": agrees,
        "stop_ids": stop_ids,
        "mmproj_loaded": mmproj_loaded,
    }


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
    import llama_cpp  # noqa: F401  (imported before the first request: that is the point)

    serve(_check)
