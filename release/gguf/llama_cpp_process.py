"""llama.cpp runs the GGUF files in a child process, so its crash is a one-line error.

llama.cpp meets a layout it does not accept with ``GGML_ASSERT`` (abort), and some
llama-cpp-python builds segfault on some CPUs; either would take the whole release down
with a core dump. So the loads run in ``python -m release.gguf.llama_cpp_process``, one
child for all of a stage's files (``LlamaCppChild``, on ``child.LineChild``): it imports
llama-cpp-python once, while the export writes, then loads each file in turn as the
parent asks (the file, the probe's token ids, as a JSON line), writes the logits
(``.npy``) and answers its findings. Where the reference holds the held-out chunks
(``release.reference.heldout``), the child runs them too and writes, for their scored
positions, only what the quality figures read (``HeldoutRun``: the logits of the
reference's top tokens, the log-sum-exp over the rest and over all, the top token, the
next token's logit), not rows of the whole vocabulary. A signal or a non-zero exit becomes
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
FLASH_ATTENTION = True
"""As llama.cpp's own tools run a file (llama-cli, llama-server, llama-perplexity:
``-fa auto``, on where the CPU runs the model): llama-cpp-python's default is off, and
the attention path moves a quant's figures (SmolLM2 q4_k_m: perplexity 0.76% higher,
KL divergence 3.7% higher with it off; the f32 file's perplexity 0.01%)."""


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
    reference: str | None = None
    """The reference file whose ``heldout`` set the child runs (None: no held-out run)."""
    vocab_rows: int | None = None
    """The merged model's vocabulary rows (a GGUF may hold padding rows past them)."""


@dataclass(frozen=True)
class HeldoutRun:
    """llama.cpp's next-token distributions at the held-out chunks' scored positions
    (chunk after chunk), against the reference's top tokens at each."""

    top_logits: np.ndarray
    """float32, positions x k: the logits of the reference's top k tokens."""
    logsumexp: np.ndarray
    """float64: over the vocabulary."""
    rest_logsumexp: np.ndarray
    """float64: over the tokens past the reference's top k (-inf where there are none)."""
    argmax: np.ndarray
    target_logits: np.ndarray
    """float32: the logit of the token that comes next in the text."""

    FIELDS = ("top_logits", "logsumexp", "rest_logsumexp", "argmax", "target_logits")


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
    heldout: HeldoutRun | None = None


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
            heldout = None
            if (folder / "heldout.npz").is_file():
                with np.load(folder / "heldout.npz") as saved:
                    heldout = HeldoutRun(**{name: saved[name] for name in HeldoutRun.FIELDS})
        return LlamaCppRun(
            logits,
            data["answer"],
            data["answer_text"],
            data["tokenizer_agrees"],
            data["stop_ids"],
            data["mmproj_loaded"],
            heldout,
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
    heldout = _heldout_set(request.reference)
    chunks = heldout.sequences() if heldout is not None else []
    longest = max(len(ids) for ids in [*request.prompts, request.smoke_ids, *chunks])
    llm = llama_cpp.Llama(
        request.path,
        n_ctx=max(256, longest + request.smoke_tokens),
        logits_all=True,
        verbose=False,
        n_threads=_threads(),
        flash_attn=FLASH_ATTENTION,
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
    if heldout is not None:
        _run_heldout(llm, heldout, request.vocab_rows, folder / "heldout.npz")
    mmproj_loaded = _load_mmproj(request.mmproj, llm) if request.mmproj else None
    llm.close()
    return {
        "answer": answer,
        "answer_text": text,
        "tokenizer_agrees": agrees,
        "stop_ids": stop_ids,
        "mmproj_loaded": mmproj_loaded,
    }


def _heldout_set(reference: str | None):
    """The reference's held-out chunks (``SequenceSet``), None where it holds none."""
    if reference is None:
        return None
    from release.reference.heldout import SET
    from release.reference.store import load_reference

    return load_reference(Path(reference)).sets.get(SET)


def _run_heldout(llm, heldout, vocab_rows: int | None, out: Path) -> None:
    """Run each chunk and keep, at its scored positions, what ``HeldoutRun`` holds (in
    blocks of rows: a float64 row of a 262k vocabulary is 2 MiB)."""
    from release.reference.heldout import scored

    parts: dict[str, list[np.ndarray]] = {name: [] for name in HeldoutRun.FIELDS}
    for ids, top_ids in zip(heldout.sequences(), heldout.split(heldout.top_ids), strict=True):
        rows = scored(len(ids))
        llm.reset()
        llm.eval(ids)
        following = np.asarray(ids[rows.start + 1 : rows.stop + 1], np.int64)
        for start in range(rows.start, rows.stop, _ROWS):
            block = slice(start, min(start + _ROWS, rows.stop))
            logits = np.array(llm.scores[block], np.float32)[:, :vocab_rows]
            kept = top_ids[block].astype(np.int64)
            wide = logits.astype(np.float64)
            top = wide.max(-1, keepdims=True)
            parts["logsumexp"].append(top[:, 0] + np.log(np.exp(wide - top).sum(-1)))
            np.put_along_axis(wide, kept, -np.inf, -1)
            with np.errstate(divide="ignore"):
                parts["rest_logsumexp"].append(top[:, 0] + np.log(np.exp(wide - top).sum(-1)))
            parts["top_logits"].append(np.take_along_axis(logits, kept, -1))
            parts["argmax"].append(logits.argmax(-1).astype(np.int32))
            targets = following[block.start - rows.start : block.stop - rows.start]
            parts["target_logits"].append(logits[np.arange(len(targets)), targets])
    np.savez(out, **{name: np.concatenate(values) for name, values in parts.items()})


_ROWS = 32
"""Scored positions worked on at once."""


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
