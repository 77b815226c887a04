"""The merged model's reference logits, computed in a child process.

``python -m release.gguf.reference_process FOLDER`` loads the merged model in float32
with transformers, runs the probe prompts (token ids from ``FOLDER/request.json``) and
the greedy smoke answer, and writes the logits (``.npy``) and the answer back. In a
child, torch's OpenMP threads can be told to sleep while they wait
(``llama_cpp_process.child_env``): in the stage's own process two spinning threads took
18-40 s for what one thread did in 5 s on a busy 2-core machine. The float32 model's
memory also leaves with the child.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from release.core.errors import WorkError
from release.gguf.llama_cpp_process import child_env, last_words

SMOKE_TOKENS = 24


def reference_run(
    model_dir: Path, prompts: list[list[int]], smoke_ids: list[int]
) -> tuple[list[np.ndarray], list[int]]:
    """The merged model's logits on each prompt and its greedy answer to ``smoke_ids``."""
    with tempfile.TemporaryDirectory(prefix="reference-run-") as work:
        folder = Path(work)
        request = {"model_dir": str(model_dir), "prompts": prompts, "smoke_ids": smoke_ids}
        (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
        command = [sys.executable, "-m", "release.gguf.reference_process", str(folder)]
        # no time limit: a large model in float32 on a CPU takes what it takes, as it
        # did in the stage's own process
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=child_env())
        result = folder / "result.json"
        if done.returncode != 0 or not result.is_file():
            raise WorkError(
                f"{model_dir}: transformers could not run the merged model "
                f"({last_words(done.returncode, done.stderr, 'transformers')})",
                hint="rerun the merge stage (--force merge); if it fails again, report it",
            )
        answer = json.loads(result.read_text(encoding="utf-8"))["answer"]
        logits = [np.load(folder / f"logits-{i}.npy") for i in range(len(prompts))]
    return logits, answer


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


def _child(folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    request = json.loads((folder / "request.json").read_text(encoding="utf-8"))
    model = AutoModelForCausalLM.from_pretrained(request["model_dir"], dtype=torch.float32)
    logits, answer = transformers_run(model, request["prompts"], request["smoke_ids"])
    for index, values in enumerate(logits):
        np.save(folder / f"logits-{index}.npy", values)
    (folder / "result.json").write_text(json.dumps({"answer": answer}), encoding="utf-8")


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
