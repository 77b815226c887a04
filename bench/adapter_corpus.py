"""Benchmark: every layout of the adapter corpus (tests/support/adapter_layouts.py) released end
to end by ``model-release run``: intake, merge, the sanity eval, an f16 GGUF checked by
llama.cpp, the card (no push). Prints one row per layout: released or refused (its
one line), the eval's figures, the GGUF's checks, wall time and the tree's CPU time.

The tests check each layout's merge against PEFT's (tests/test_adapter_corpus.py) and
release end to end only the layouts that change the GGUF; this runs them all, once:

    nice -n 19 python bench/adapter_corpus.py [--workdir DIR] [--only NAME ...]

The bases are the tests' tiny models, built here: the Llama of tests/support/models.py (2
layers, hidden 64, the SmolLM2 tokenizer), untied, tied, and the tied one's untied copy
(the way out for a tied head's adapter that trains the two apart), and the Gemma 4 of
tests/support/gemma4_models.py (a Gemma tokenizer: llama.cpp's Gemma 4 vocabulary wants one).
The eval's chat smoke test is left out (``eval.prompts: []``): a random model answers
with noise (tests/test_gemma4_release.py says why).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bench.shared import run_tree  # noqa: E402


@dataclass(frozen=True)
class Layout:
    base: str
    """"llama", "tied llama", "untied copy of tied llama" or "gemma4"."""
    build: Callable[[Path, Path], object]
    repo_id: str | None = None
    """The base's Hub id as the spec names it (the folder is read all the same)."""
    trained_on: str | None = None
    """The base the adapter was trained on, when it is released onto another (``base``)."""


def corpus() -> dict[str, Layout]:
    from tests.support import adapter_layouts as layouts

    table: dict[str, Layout] = {}
    for base in ("llama", "gemma4"):
        for name in layouts.LORA_LAYOUTS:
            table[f"{base}: {name}"] = Layout(
                base, lambda b, p, name=name: layouts.lora_adapter(b, p, name)
            )
    table["llama: pissa converted"] = Layout("llama", layouts.pissa_converted_adapter)
    for init in layouts.REFUSED_INITS:
        table[f"llama: init_lora_weights={init}"] = Layout(
            "llama", lambda b, p, init=init: _with_init(b, p, init)
        )
    for base in ("llama", "tied llama"):
        for untie in (False, True):
            name = f"{base}: added tokens, modules_to_save, {'apart' if untie else 'tied'}"
            table[name] = Layout(
                base, lambda b, p, u=untie: layouts.added_tokens_adapter(b, p, untie=u)
            )
        for grow in (False, True):
            name = f"{base}: trainable_token_indices, {'added tokens' if grow else 'base vocab'}"
            table[name] = Layout(
                base, lambda b, p, g=grow: layouts.trainable_tokens_adapter(b, p, grow=g)
            )
    apart = {"embed_tokens": [5, 17], "lm_head": [9, 30]}
    # refused on the tied base; its way out, the base untied, merges
    for base in ("tied llama", "untied copy of tied llama"):
        table[f"{base}: trainable tokens, lm_head rows apart"] = Layout(
            base,
            lambda b, p: layouts.trainable_tokens_adapter(b, p, grow=False, indices=apart),
            trained_on="tied llama",
        )
    plain = layouts.UNSLOTH_BASE.removesuffix("-bnb-4bit")
    table[f"llama: unsloth, base {plain}"] = Layout("llama", layouts.unsloth_adapter, plain)
    for clone in (False, True):
        name = "llama: TRL SFTTrainer, " + ("template cloned, tokens added" if clone else "jinja")
        table[name] = Layout("llama", lambda b, p, c=clone: layouts.sft_adapter(b, p, clone=c))
    return table


def _with_init(base: Path, path: Path, init: str) -> None:
    from tests.support.adapter_layouts import lora_adapter

    lora_adapter(base, path, "plain")
    config = json.loads((path / "adapter_config.json").read_text())
    config["init_lora_weights"] = init
    (path / "adapter_config.json").write_text(json.dumps(config))


def bases(root: Path, tokenizer_dir: Path) -> dict[str, Path]:
    from transformers import AutoTokenizer

    from tests.support.adapter_layouts import untied_copy
    from tests.support.gemma4_models import make_gemma4_text
    from tests.support.models import make_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    built = {}
    for name, make in {
        "llama": lambda p: make_tiny_llama(p, tokenizer),
        "tied llama": lambda p: make_tiny_llama(p, tokenizer, tie_word_embeddings=True),
        "untied copy of tied llama": lambda p: untied_copy(built["tied llama"], p),
        "gemma4": make_gemma4_text,  # with a Gemma tokenizer, which its GGUF needs
    }.items():
        folder = root / "bases" / name.replace(" ", "-").replace("gemma4", "gemma4-text")
        if not (folder / "config.json").is_file():
            make(folder)
        built[name] = folder
    return built


def release(name: str, layout: Layout, built: dict[str, Path], root: Path) -> dict:
    folder = root / "layouts" / "".join(c if c.isalnum() else "-" for c in name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    base = built[layout.base]
    layout.build(built[layout.trained_on or layout.base], folder / "adapter")
    repo_line = f"  repo_id: {layout.repo_id}\n" if layout.repo_id else ""
    spec = folder / "release.yaml"
    spec.write_text(
        f"name: corpus\nversion: 0.1.0\nbase:\n  path: {base}\n{repo_line}"
        f"adapter:\n  path: {folder / 'adapter'}\nworkspace: {folder / 'build'}\n"
        "gguf:\n  types: [f16]\neval:\n  prompts: []\ncard:\n  license: apache-2.0\n"
    )
    command = [sys.executable, "-m", "release.cli", "run", str(spec), "--json"]
    env = {**os.environ, "MODEL_RELEASE_EVAL_CACHE": str(root / "eval-cache")}  # shared here
    usage = run_tree(command, env=env, cwd=REPO)
    row = {"wall_s": usage.wall_s, "cpu_s": usage.cpu_s, "rc": usage.returncode}
    events = [json.loads(line) for line in usage.stdout.splitlines() if line.startswith("{")]
    failed = [e["error"] for e in events if e.get("type") == "stage_failed"]
    if usage.returncode != 0:
        tail = usage.stderr_tail.strip().splitlines()
        row["result"] = "refused: " + (failed[-1] if failed else tail[-1] if tail else "?")
        return row
    manifest = json.loads((folder / "build" / "manifest.json").read_text())["stages"]
    evaluate, gguf = manifest["evaluate"]["facts"], manifest["gguf"]["facts"]
    (file,) = gguf["files"]
    row["result"] = "released"
    row["eval"] = (
        f"top-1 {evaluate['equivalence']['top1_agreement']:.3f}, "
        f"ppl ratio {evaluate['perplexity']['ratio']:.4f}"
    )
    row["gguf"] = (
        f"{'passed' if file['passed'] else 'FAILED'}: top-1 "
        + ", ".join(f"{k} {v:.3f}" for k, v in file["top1_agreement"].items())
        + f", tokenizer {'agrees' if file['tokenizer_agreement'] else 'differs'}"
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="layout names (substrings)")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="adapter-corpus-"))
    from tests.conftest import TEST_CACHE

    tokenizer_dir = TEST_CACHE / "smollm2-tokenizer"
    if not (tokenizer_dir / "tokenizer_config.json").is_file():
        from release.demo.smollm2 import load_tokenizer

        load_tokenizer().save_pretrained(tokenizer_dir)
    built = bases(root, tokenizer_dir)
    table = corpus()
    chosen = [n for n in table if not args.only or any(o in n for o in args.only)]
    print("| layout | result | eval | f16 GGUF | wall s | CPU s |")
    print("|---|---|---|---|---|---|")
    for name in chosen:
        layout = table[name]
        row = release(name, layout, built, root)
        print(
            f"| {name} | {row['result']} | {row.get('eval', '')} | {row.get('gguf', '')} "
            f"| {row['wall_s']:.0f} | {row['cpu_s']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
