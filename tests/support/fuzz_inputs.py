"""Random mutations of valid inputs, each run through the real CLI in-process.

Five targets, each a file a user hands the tool: release.yaml (``spec check``), the
adapter's adapter_config.json and its safetensors header (``run --stage adapter``), a
card's front matter (``card check``) and a results file, lm-eval JSON or simple YAML
(``card build --results``). A mutation is either textual (a span deleted, doubled or
swapped, characters YAML and JSON give meaning to inserted) or structural (a value
somewhere in the parsed document replaced by one of another type or an extreme one, a
key dropped or added). Whatever the input, the answer is an exit code of 0, 1 or 2
with no traceback and no "this is a bug": that is what a ``Finding`` records when not.

Used by tests/test_fuzz_inputs.py (a fixed-seed sample) and bench/fuzz_inputs.py
(thousands of cases).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SAMPLES = Path(__file__).parents[1] / "cards_samples"
GOOD_CARD = SAMPLES / "cards" / "good.md"
CARD_YAML = SAMPLES / "demo" / "card.yaml"
LMEVAL = SAMPLES / "results_2026-03-01T10-00-00.123456.json"
SIMPLE = SAMPLES / "simple_results.yaml"
WEIGHTS = "adapter_model.safetensors"

SPEC = """\
name: tiny
version: 0.1.0
base:
  path: {base}
adapter:
  path: adapter
workspace: build
merge:
  dtype: auto
  shard_size: 2GB
eval:
  enabled: true
  max_new_tokens: 32
gguf:
  types: [f16, q8_0]
card:
  summary: A tiny model.
  license: apache-2.0
  language: [en]
  tags: [lora]
push:
  repo_id: me/tiny
"""

_INSERTS = [
    ":", ": ", "-", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "\n", "\n  ", " ", "'", '"',
    "!!python/object:os.system ", "!!binary ", "0", "-1", "1e999", ".nan", ".inf", "null",
    "~", "|", ">", "#", "\t", "\x00", "é", "\\", "\ufeff", "---\n", "...\n", "<<: *a\n",
    "?", "%YAML 1.1\n", "\r", "NaN", "Infinity", "9" * 40,
]  # fmt: skip
_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 2**70, -(2**63), 1e308, -1e-308, 0.5, "", "x" * 5000,
    "8", "0.5", "nan", "inf", "a\nb: c", "|", "../../etc", "/", "~", [], {}, [1, "a"],
    {"a": 1}, [[[[[]]]]], "hf_" + "a" * 30, "https://u:p@h/x", "\x00", "F32", "BF16",
    [-1, 4], [0, 2**62], [2**31, 2**31],
]  # fmt: skip


def mutate_text(text: str, rng: random.Random) -> str:
    """One to four textual edits: delete, double, swap or insert."""
    for _ in range(rng.randint(1, 4)):
        if not text:
            text = rng.choice(_INSERTS)
            continue
        at = rng.randrange(len(text))
        end = min(len(text), at + rng.randint(1, 40))
        edit = rng.randrange(4)
        if edit == 0:
            text = text[:at] + text[end:]
        elif edit == 1:
            text = text[:end] + text[at:end] + text[end:]
        elif edit == 2:
            lines = text.splitlines(keepends=True)
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
        else:
            text = text[:at] + rng.choice(_INSERTS) + text[at:]
    return text


def _paths(data: Any, path: tuple = ()) -> list[tuple]:
    found = [path]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*path, index))
    return found


def mutate_data(data: Any, rng: random.Random) -> Any:
    """One to three structural edits of parsed JSON/YAML: replace, drop or add."""
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_paths(data))
        if not path:
            if rng.random() < 0.1:
                data = rng.choice(_VALUES)
            continue
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        edit = rng.randrange(3)
        if edit == 0:
            parent[path[-1]] = rng.choice(_VALUES)
        elif edit == 1:
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[rng.choice(["r", "dtype", "shape", "extra", "__metadata__", "value"])] = (
                rng.choice(_VALUES)
            )
        else:
            parent.append(rng.choice(_VALUES))
    return data


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=True, default=str)


@dataclass(frozen=True)
class Finding:
    """A case whose answer was a traceback, "this is a bug" or an odd exit code."""

    target: str
    seed: int
    argv: list[str]
    code: int
    output: str
    input_text: str


class Fuzzer:
    """A good tiny release in ``root`` whose files each case breaks anew."""

    def __init__(self, root: Path, base: Path, adapter: Path) -> None:
        self.root = root
        self.base = base
        self.adapter = root / "adapter"
        shutil.copytree(adapter, self.adapter)
        self.good_config = (self.adapter / "adapter_config.json").read_text()
        self.good_weights = (self.adapter / WEIGHTS).read_bytes()
        self.spec = root / "release.yaml"
        self.good_spec = SPEC.format(base=base)
        self.spec.write_text(self.good_spec)
        self.targets: dict[str, Callable[[random.Random], tuple[list[str], str]]] = {
            "spec": self._spec,
            "adapter_config": self._adapter_config,
            "safetensors_header": self._safetensors_header,
            "card_front_matter": self._card,
            "results": self._results,
        }

    def case(self, target: str, seed: int) -> Finding | None:
        """Run one mutated input of ``target``; a ``Finding`` when it was not answered
        cleanly."""
        from release.cli import main

        argv, text = self.targets[target](random.Random(f"{target}-{seed}"))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        output = out.getvalue() + err.getvalue()
        if code in (0, 1, 2) and "Traceback" not in output and "this is a bug" not in output:
            return None
        return Finding(target, seed, argv, code, output[-2000:], text[:4000])

    def _reset_release(self) -> None:
        self.spec.write_text(self.good_spec)
        (self.adapter / "adapter_config.json").write_text(self.good_config)
        (self.adapter / WEIGHTS).write_bytes(self.good_weights)

    def _spec(self, rng: random.Random) -> tuple[list[str], str]:
        if rng.random() < 0.5:
            text = mutate_text(self.good_spec, rng)
        else:
            text = yaml.safe_dump(mutate_data(yaml.safe_load(self.good_spec), rng))
        self.spec.write_text(text, encoding="utf-8", errors="surrogatepass")
        return ["spec", "check", str(self.spec)], text

    def _run_adapter(self) -> list[str]:
        return ["run", str(self.spec), "--stage", "adapter"]

    def _adapter_config(self, rng: random.Random) -> tuple[list[str], str]:
        self._reset_release()
        if rng.random() < 0.3:
            text = mutate_text(self.good_config, rng)
        else:
            text = _json(mutate_data(json.loads(self.good_config), rng))
        (self.adapter / "adapter_config.json").write_text(text, errors="surrogatepass")
        return self._run_adapter(), text

    def _safetensors_header(self, rng: random.Random) -> tuple[list[str], str]:
        self._reset_release()
        data = self.good_weights
        (length,) = struct.unpack("<Q", data[:8])
        header_text = data[8 : 8 + length].decode()
        if rng.random() < 0.3:
            text = mutate_text(header_text, rng)
        else:
            text = _json(mutate_data(json.loads(header_text), rng))
        raw = text.encode("utf-8", errors="surrogatepass")
        if rng.random() < 0.5:  # the same length, as an editor in place would leave it
            raw = raw[:length].ljust(length)
        (self.adapter / WEIGHTS).write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length :])
        return self._run_adapter(), text

    def _card(self, rng: random.Random) -> tuple[list[str], str]:
        card = GOOD_CARD.read_text()
        _, front, body = card.split("---\n", 2)
        if rng.random() < 0.5:
            front = mutate_text(front, rng)
        else:
            front = yaml.safe_dump(mutate_data(yaml.safe_load(front), rng), allow_unicode=True)
        text = f"---\n{front}---\n{body}"
        path = self.root / "README.md"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return ["card", "check", str(path)], text

    def _results(self, rng: random.Random) -> tuple[list[str], str]:
        if rng.random() < 0.5:
            good = LMEVAL.read_text()
            path = self.root / LMEVAL.name
            if rng.random() < 0.3:
                text = mutate_text(good, rng)
            else:
                text = _json(mutate_data(json.loads(good), rng))
        else:
            good = SIMPLE.read_text()
            path = self.root / SIMPLE.name
            if rng.random() < 0.5:
                text = mutate_text(good, rng)
            else:
                text = yaml.safe_dump(mutate_data(yaml.safe_load(good), rng))
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = self.root / "card" / "README.md"
        argv = ["card", "build", "--metadata", str(CARD_YAML), "--results", str(path)]
        return [*argv, "--output", str(out)], text
