"""The demo's own stored eval result: does the fine-tuned model answer as trained?

A real release imports scores that an eval harness stored (lm-eval's results_*.json or
the simple YAML format of ``cards.simple_results``). The demo produces one the same way
a user would: it asks base + adapter (through PEFT) held-out conversion questions and
stores two accuracies, which the release then imports into the card's model-index:

- ``format_acc``: the answer has the trained form, ``<v> km = <n> mi. (1 km = 0.621371
  mi)``, with the right factor (what 40 steps of LoRA can teach a 135M model);
- ``acc_within_10pct``: the number it gives is within 10% of the exact value (arithmetic,
  which a model this small mostly gets wrong).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from release.core.files import atomic_write_text
from release.core.quiet import held_stderr

_FACTORS = (  # as in the training data: names, factor, symbols
    ("kilometres", "miles", 0.621371, "km", "mi"),
    ("kilograms", "pounds", 2.204623, "kg", "lb"),
    ("metres", "feet", 3.28084, "m", "ft"),
    ("litres", "US gallons", 0.264172, "L", "gal"),
)
_NUMBER = re.compile(r"=\s*(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Question:
    text: str
    expected: float
    form: re.Pattern


def held_out_questions(count: int = 16, seed: int = 7) -> list[Question]:
    """Conversion questions the adapter never saw (values above the training range)."""
    rng = random.Random(seed)
    questions = []
    for _ in range(count):
        source, target, factor, a, b = rng.choice(_FACTORS)
        value = rng.randint(501, 999)  # training values stop at 500
        form = re.compile(rf"^{value} {a} = [\d.]+ {b}\. \(1 {a} = {factor} {b}\)$")
        questions.append(Question(f"Convert {value} {source} to {target}.", value * factor, form))
    return questions


def within(answer: str, expected: float, tolerance: float = 0.1) -> bool:
    match = _NUMBER.search(answer)
    return bool(match) and abs(float(match.group(1)) - expected) <= tolerance * abs(expected)


def _answer(model, tokenizer, question: str) -> str:
    """The model's greedy answer to one question, through the chat template."""
    import torch

    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(input_ids=ids, max_new_tokens=32, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def score_adapter(
    base_dir: Path,
    adapter_dir: Path,
    out_path: Path,
    *,
    model_id: str,
    on_answer: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Both accuracies of base + adapter on the held-out questions, stored at ``out_path``;
    ``on_answer(done, total)`` after each answer.

    The adapter is merged into the float32 base in memory first: unmerged, PEFT's LoRA
    branch ran beside every projection for every token (py-spy on SmolLM2: the LoRA
    branch took 25.5% of generate()'s samples and PEFT's own code 6%, against 27% for
    the projections themselves), and the step printed nothing for minutes."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    questions = held_out_questions()
    formatted = close = 0
    with held_stderr():  # loading bars, PEFT's warnings
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload().eval()
    answers = []
    for question in questions:
        with held_stderr():  # generate()'s warnings
            answers.append(_answer(model, tokenizer, question.text))
        if on_answer:
            on_answer(len(answers), len(questions))
    for question, answer in zip(questions, answers, strict=True):
        formatted += bool(question.form.match(answer))
        close += within(answer, question.expected)
    scores = {"format_acc": formatted / len(questions), "acc_within_10pct": close / len(questions)}
    results = {
        "harness": "model-release demo",
        "model": model_id,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "results": [
            {
                "task": "unit_conversions",
                "metric": metric,
                "value": round(value, 4),
                "n_shot": 0,
                "higher_is_better": True,
            }
            for metric, value in scores.items()
        ],
    }
    atomic_write_text(out_path, yaml.safe_dump(results, sort_keys=False))
    return scores
