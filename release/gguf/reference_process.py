"""The merged model's reference: its tokenizer and logits, in a child process.

``ReferenceChild`` starts ``python -m release.gguf.reference_process`` and hands it the
probe at once, so importing transformers and torch and running the merged model in
float32 overlap the export (they cost the stage about 20 s on the demo when it waited
for them). The child tokenizes the probe prompts and the smoke prompt with the merged
model's tokenizer and answers the ids first (llama.cpp's child can start on them), then
writes the logits (``.npy``) and its greedy answer, lets the model go, and stays to
decode the answers llama.cpp gives for each file with the same tokenizer, so the
stage's own process never imports transformers. In a child, torch's
OpenMP threads can be told to sleep while they wait (``child.child_env``): in the
stage's own process two spinning threads took 18-40 s for what one thread did in 5 s
on a busy 2-core machine. The float32 model's memory leaves with it too.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from release.core.errors import WorkError
from release.gguf.child import ChildDied, LineChild, serve

SMOKE_TOKENS = 24


@dataclass(frozen=True)
class Reference:
    """What the merged model says on the probe."""

    logits: list[np.ndarray]
    answer: str


class ReferenceChild:
    """The merged model in a child, started on creation. It answers in order: the probe's
    token ids (``ids``: the tokenizer alone, so llama.cpp can start on them), then the
    logits and smoke answer (``reference``), then any ``decode``."""

    def __init__(self, model_dir: Path, texts: list[str], smoke_prompt: str) -> None:
        self.model_dir = model_dir
        self._out = tempfile.TemporaryDirectory(prefix="reference-run-")
        self._child = LineChild(__name__, "transformers")
        self._child.send({"tokenize": str(model_dir), "texts": texts, "smoke_prompt": smoke_prompt})
        self._child.send({"logits": str(model_dir), "out": self._out.name})
        self._ids: tuple[list[list[int]], list[int]] | None = None
        self._reference: Reference | None = None

    def ids(self) -> tuple[list[list[int]], list[int]]:
        """The probe prompts' and the smoke prompt's token ids (waits for them)."""
        if self._ids is None:
            data = self._answer()
            self._ids = data["prompts"], data["smoke_ids"]
        return self._ids

    def reference(self) -> Reference:
        """The merged model's logits and greedy answer (waits for them)."""
        if self._reference is None:
            prompts, _ = self.ids()
            data = self._answer()
            folder = Path(self._out.name)
            logits = [np.load(folder / f"logits-{i}.npy") for i in range(len(prompts))]
            self._out.cleanup()
            self._reference = Reference(logits, data["answer"])
        return self._reference

    def decode(self, ids: list[int]) -> str:
        """``ids`` as text by the merged model's tokenizer (special tokens left out)."""
        self.reference()  # answers come in order
        self._child.send({"decode": ids})
        return self._answer()["text"]

    def _answer(self) -> dict:
        # no time limit: a large model in float32 on a CPU takes what it takes, as it
        # did in the stage's own process
        try:
            return self._child.receive()
        except ChildDied as died:
            self.close()
            raise WorkError(
                f"{self.model_dir}: transformers could not run the merged model ({died})",
                hint="rerun the merge stage (--force merge); if it fails again, report it",
            ) from None

    def close(self) -> None:
        self._child.close()
        self._out.cleanup()


def transformers_run(
    model, prompts: list[list[int]], smoke_ids: list[int]
) -> tuple[list[np.ndarray], list[int]]:
    """A transformers model's logits on each prompt, and its greedy answer to
    ``smoke_ids``."""
    import torch

    with torch.inference_mode():
        logits = [model(torch.tensor([ids])).logits[0].float().numpy() for ids in prompts]
        out = model.generate(
            torch.tensor([smoke_ids]), max_new_tokens=SMOKE_TOKENS, do_sample=False
        )
    return logits, out[0, len(smoke_ids) :].tolist()


def _smoke_ids(tokenizer, prompt: str) -> list[int]:
    if tokenizer.chat_template:
        messages = [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(prompt)


class _Served:
    """The child's side: token ids, then the logits, then decodes."""

    def __init__(self) -> None:
        self.tokenizer = None
        self.prompts: list[list[int]] = []
        self.smoke_ids: list[int] = []

    def __call__(self, message: dict) -> dict:
        from transformers import AutoTokenizer

        if "tokenize" in message:
            self.tokenizer = AutoTokenizer.from_pretrained(message["tokenize"])
            self.prompts = [self.tokenizer.encode(text) for text in message["texts"]]
            self.smoke_ids = _smoke_ids(self.tokenizer, message["smoke_prompt"])
            return {"prompts": self.prompts, "smoke_ids": self.smoke_ids}
        if "logits" in message:
            return {"answer": self._logits(message["logits"], Path(message["out"]))}
        return {"text": self.tokenizer.decode(message["decode"], skip_special_tokens=True)}

    def _logits(self, model_dir: str, out: Path) -> str:
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        logits, answer = transformers_run(model, self.prompts, self.smoke_ids)
        for index, values in enumerate(logits):
            np.save(out / f"logits-{index}.npy", values)
        return self.tokenizer.decode(answer, skip_special_tokens=True)


if __name__ == "__main__":
    # imported before the request comes, while the stage exports: that is the point
    import torch  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

    serve(_Served())
