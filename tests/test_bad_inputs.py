"""The bad-input corpus: every case runs the real CLI in-process and must fail cleanly.

A clean failure is: the right exit code (2 for bad input, 1 for a failed stage), an error
on stderr that names what is wrong and where, in one line (a spec error has one more
line per located problem), no traceback, and nothing left behind: no .partial files, no
stage folder the manifest does not record, and the manifest's records unchanged.

Text cases are files under tests/bad_inputs/ (``@BASE@`` in a release.yaml stands for
the tiny base's folder); binary cases are made here from a good tiny release.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from release.cli import main
from release.core.workspace import MARKER_NAME

pytest_plugins = ("tests.support.disk_fixtures",)  # the small_disk fixture

CORPUS = Path(__file__).parent / "bad_inputs"
GOOD_CARD = Path(__file__).parent / "cards_samples" / "cards" / "good.md"
CARD_YAML = Path(__file__).parent / "cards_samples" / "demo" / "card.yaml"
GOOD_SPEC = "name: tiny\nversion: 0.1.0\nbase:\n  path: @BASE@\nadapter:\n  path: adapter\n"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


@dataclass
class Release:
    """A good tiny release in ``root`` (release.yaml, adapter/), for a case to break."""

    root: Path
    base: Path
    env: pytest.MonkeyPatch

    @property
    def spec(self) -> Path:
        return self.root / "release.yaml"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def workspace(self) -> Path:
        return self.root / "build"

    def write_spec(self, text: str) -> None:
        self.spec.write_text(text.replace("@BASE@", str(self.base)))

    def own_base(self) -> Path:
        """A copy of the base that the case may break."""
        self.base = Path(shutil.copytree(self.base, self.root / "base"))
        self.write_spec(GOOD_SPEC)
        return self.base

    def run(self, *stages: str) -> list[str]:
        return ["run", str(self.spec), *(arg for s in stages for arg in ("--stage", s))]


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Release], list[str]]  # breaks the release; returns the CLI arguments
    code: int
    says: tuple[str, ...]  # what the error line must name (what and where)


# --- release.yaml -------------------------------------------------------------------


def _spec_file(name: str) -> Callable[[Release], list[str]]:
    def make(release: Release) -> list[str]:
        release.write_spec((CORPUS / "spec" / name).read_text())
        return release.run("adapter")

    return make


SPEC_CASES = [
    Case("spec-unknown-key", _spec_file("unknown_key.yaml"), 2, ("release.yaml:9", "shardsize")),
    Case("spec-wrong-type", _spec_file("wrong_type.yaml"), 2, ("release.yaml:8", "max_new_tokens")),
    Case("spec-unknown-gguf-type", _spec_file("unknown_gguf_type.yaml"), 2, ("gguf.types",)),
    Case(
        "spec-huge-number", _spec_file("huge_value.yaml"), 2, ("release.yaml:8", "max_new_tokens")
    ),
    Case(
        "spec-zero-shard-size",
        _spec_file("zero_shard_size.yaml"),
        2,
        ("release.yaml:8", "shard_size"),
    ),
    Case(
        "spec-yaml-syntax", _spec_file("yaml_syntax.yaml"), 2, ("release.yaml:", "not valid YAML")
    ),
    Case(
        "spec-duplicate-key",
        _spec_file("duplicate_key.yaml"),
        2,
        ("release.yaml:7", "duplicate key"),
    ),
    Case("spec-future-version", _spec_file("future_spec_version.yaml"), 2, ("spec_version",)),
    Case("spec-name-traversal", _spec_file("name_traversal.yaml"), 2, ("release.yaml:1", "name")),
    Case("spec-name-absolute", _spec_file("name_absolute.yaml"), 2, ("release.yaml:1", "name")),
    Case("spec-missing-adapter", _spec_file("missing_adapter.yaml"), 2, ("no-such-adapter",)),
    Case("spec-missing-base", _spec_file("missing_base.yaml"), 2, ("no-such-base",)),
    Case("spec-adapter-is-a-file", _spec_file("adapter_is_a_file.yaml"), 2, ("release.yaml",)),
    Case("spec-base-without-source", _spec_file("base_without_source.yaml"), 2, ("base",)),
    Case("spec-top-level-list", _spec_file("top_level_list.yaml"), 2, ("release.yaml", "mapping")),
    Case("spec-empty", _spec_file("empty.yaml"), 2, ("release.yaml", "mapping")),
    Case("spec-bad-version", _spec_file("bad_version.yaml"), 2, ("release.yaml:2", "version")),
    Case("spec-bad-repo-id", _spec_file("bad_repo_id.yaml"), 2, ("release.yaml:8", "repo_id")),
]


def _non_utf8_spec(release: Release) -> list[str]:
    text = GOOD_SPEC.replace("@BASE@", str(release.base)) + "card:\n  summary: caf"
    release.spec.write_bytes(text.encode() + b"\xe9\n")  # Latin-1 é
    return release.run("adapter")


def _huge_name_spec(release: Release) -> list[str]:
    release.write_spec(GOOD_SPEC.replace("name: tiny", "name: " + "x" * 100_000))
    return release.run("adapter")


SPEC_CASES += [
    Case("spec-non-utf8", _non_utf8_spec, 2, ("release.yaml", "UTF-8")),
    Case("spec-huge-name", _huge_name_spec, 2, ("release.yaml:1", "name")),
]


# --- the adapter --------------------------------------------------------------------


def _adapter_case(
    breaks: Callable[[Path], None],
) -> Callable[[Release], list[str]]:
    def make(release: Release) -> list[str]:
        breaks(release.adapter)
        return release.run("adapter")

    return make


def _tensors(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(adapter / ADAPTER_WEIGHTS)


def _save(adapter: Path, tensors: dict) -> None:
    from safetensors.torch import save_file

    save_file(tensors, adapter / ADAPTER_WEIGHTS, metadata={"format": "pt"})


def _empty_dir(adapter: Path) -> None:
    shutil.rmtree(adapter)
    adapter.mkdir()


def _pickle_only(adapter: Path) -> None:
    import torch

    torch.save(_tensors(adapter), adapter / "adapter_model.bin")
    (adapter / ADAPTER_WEIGHTS).unlink()


def _truncate(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _corrupt_header(file: Path) -> None:
    data = bytearray(file.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    data[8 : 8 + length] = (
        b"{" + b"\x00garbage" * (length // 8) + b"}"[: length - 1 - length // 8 * 8]
    )
    file.write_bytes(bytes(data[: 8 + length]) + bytes(data[8 + length :]))


def _huge_header_length(file: Path) -> None:
    data = file.read_bytes()
    file.write_bytes(struct.pack("<Q", 2**62) + data[8:])


def _nan_weights(adapter: Path) -> None:
    tensors = _tensors(adapter)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name].clone()
    tensors[name][0, 0] = math.nan
    _save(adapter, tensors)


def _module_base_lacks(adapter: Path) -> None:
    tensors = _tensors(adapter)
    _save(adapter, {k.replace("layers.1.", "layers.7."): v for k, v in tensors.items()})


def _shape_off_by_one(adapter: Path) -> None:
    import torch

    tensors = _tensors(adapter)
    name = next(k for k in sorted(tensors) if "lora_A" in k)
    a = tensors[name]
    tensors[name] = torch.cat([a, a[:, :1]], dim=1)
    _save(adapter, tensors)


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(adapter: Path) -> None:
        path = adapter / "adapter_config.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | changes))

    return edit


def _drop_config_key(key: str) -> Callable[[Path], None]:
    def edit(adapter: Path) -> None:
        path = adapter / "adapter_config.json"
        config = json.loads(path.read_text())
        del config[key]
        path.write_text(json.dumps(config))

    return edit


def _config_not_json(adapter: Path) -> None:
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4,')


def _lora_b_without_a(adapter: Path) -> None:
    tensors = _tensors(adapter)
    _save(adapter, {k: v for k, v in tensors.items() if not ("layers.0." in k and "lora_A" in k)})


W = ADAPTER_WEIGHTS
ADAPTER_CASES = [
    Case("adapter-empty-dir", _adapter_case(_empty_dir), 2, ("adapter", "adapter_config.json")),
    Case("adapter-pickle-only", _adapter_case(_pickle_only), 2, ("adapter_model.bin",)),
    Case("adapter-truncated", _adapter_case(lambda a: _truncate(a / W)), 2, (W,)),
    Case("adapter-corrupt-header", _adapter_case(lambda a: _corrupt_header(a / W)), 2, (W,)),
    Case("adapter-huge-header", _adapter_case(lambda a: _huge_header_length(a / W)), 2, (W,)),
    Case("adapter-zero-bytes", _adapter_case(lambda a: (a / W).write_bytes(b"")), 2, (W,)),
    Case("adapter-nan", _adapter_case(_nan_weights), 2, ("adapter", "NaN")),
    Case("adapter-module-base-lacks", _adapter_case(_module_base_lacks), 2, ("layers.7",)),
    Case("adapter-shape-off-by-one", _adapter_case(_shape_off_by_one), 2, ("layers.0", "65")),
    Case(
        "adapter-unknown-peft-type", _adapter_case(_edit_config(peft_type="SHIRA2")), 2, ("SHIRA2",)
    ),
    Case("adapter-config-not-json", _adapter_case(_config_not_json), 2, ("adapter_config.json",)),
    Case("adapter-rank-lies", _adapter_case(_edit_config(r=16)), 2, ("adapter",)),
    Case("adapter-config-no-rank", _adapter_case(_drop_config_key("r")), 2, ("'r' is missing",)),
    Case("adapter-alpha-not-a-number", _adapter_case(_edit_config(lora_alpha="x")), 2, ("x",)),
    Case(
        "adapter-b-without-a",
        _adapter_case(_lora_b_without_a),
        2,
        ("layers.0.self_attn.q_proj", "incomplete LoRA pair"),
    ),
]


def _other_architecture(release: Release) -> list[str]:
    from tests.support.lora_models import make_adapter, make_tiny_gemma4

    gemma = make_tiny_gemma4(release.root / "gemma")
    shutil.rmtree(release.adapter)
    make_adapter(gemma, release.adapter, target_modules=["q_proj", "v_proj"])
    return release.run("adapter")


ADAPTER_CASES.append(Case("adapter-other-architecture", _other_architecture, 2, ("adapter",)))


# --- the base -----------------------------------------------------------------------


def _base_case(breaks: Callable[[Path], None]) -> Callable[[Release], list[str]]:
    def make(release: Release) -> list[str]:
        breaks(release.own_base())
        return release.run("adapter", "merge")

    return make


def _quantized(base: Path) -> None:
    path = base / "config.json"
    quant = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    path.write_text(json.dumps(json.loads(path.read_text()) | {"quantization_config": quant}))


SHARD = "model.safetensors"
BASE_CASES = [
    Case("base-truncated-shard", _base_case(lambda b: _truncate(b / SHARD)), 2, (SHARD,)),
    Case("base-corrupt-header", _base_case(lambda b: _corrupt_header(b / SHARD)), 2, (SHARD,)),
    Case("base-quantized", _base_case(_quantized), 2, ("quantiz",)),
    Case(
        "base-config-not-json",
        _base_case(lambda b: (b / "config.json").write_text("{")),
        2,
        ("config.json",),
    ),
    Case("base-no-config", _base_case(lambda b: (b / "config.json").unlink()), 2, ("config.json",)),
]


# --- cards and eval results ---------------------------------------------------------


def _card_check(name: str) -> Callable[[Release], list[str]]:
    return lambda release: ["card", "check", str(CORPUS / "cards" / name)]


def _non_utf8_card(release: Release) -> list[str]:
    card = release.root / "README.md"
    card.write_bytes(GOOD_CARD.read_bytes().replace(b"# good", b"# caf\xe9"))
    return ["card", "check", str(card)]


def _card_build(*extra: str) -> Callable[[Release], list[str]]:
    def make(release: Release) -> list[str]:
        out = release.workspace / "README.md"
        return ["card", "build", "--metadata", str(CARD_YAML), *extra, "--output", str(out)]

    return make


def _results(name: str) -> str:
    return str(next((CORPUS / "results" / name).iterdir()))


CARD_CASES = [
    Case(
        "card-broken-front-matter",
        _card_check("broken_front_matter.md"),
        1,
        ("broken_front_matter.md:5", "front matter"),
    ),
    Case(
        "card-unknown-license",
        _card_check("unknown_license.md"),
        1,
        ("unknown_license.md:2", "license"),
    ),
    Case("card-broken-bibtex", _card_check("broken_bibtex.md"), 1, ("broken_bibtex.md:", "bibtex")),
    Case("card-non-utf8", _non_utf8_card, 2, ("README.md", "UTF-8")),
    Case(
        "card-template-escapes-sandbox",
        _card_build("--template-dir", str(CORPUS / "templates_escape")),
        2,
        ("model_card.md.j2", "__class__"),
    ),
    Case(
        "card-template-undefined",
        _card_build("--template-dir", str(CORPUS / "templates_undefined")),
        2,
        ("model_card.md.j2", "no_such_variable"),
    ),
    Case(
        "results-malformed-json",
        _card_build("--results", _results("malformed")),
        2,
        ("results_2026-03-05",),
    ),
    Case(
        "results-nan-score",
        _card_build("--results", _results("nan_score")),
        2,
        ("results_2026-03-06", "arc_easy"),
    ),
]

# --- the workspace: the tool writes only in a folder it made -------------------------


def _workspace(value: str, prepare: Callable[[Release], None] = lambda r: None):
    def make(release: Release) -> list[str]:
        prepare(release)
        release.write_spec(GOOD_SPEC + f"workspace: {value}\n")
        return release.run("adapter")

    return make


def _users_folders(release: Release) -> None:
    """What the issue's user had beside the adapter: notes, and folders named as stages."""
    (release.adapter / "NOTES.txt").write_text("my notes\n")
    for name in ("gguf", "push"):
        (release.root / name).mkdir()
        (release.root / name / "keep.txt").write_text(name)


def _users_folder(release: Release) -> None:
    (release.root / "mine").mkdir()
    (release.root / "mine" / "thesis.tex").write_text("\\documentclass{article}\n")


def _results_folder(release: Release) -> None:
    shutil.copytree(CORPUS / "results" / "malformed", release.root / "results")
    results = next((release.root / "results").iterdir())
    release.write_spec(GOOD_SPEC + f"eval:\n  results: [{results}]\n")


def _workspace_holds_results(release: Release) -> list[str]:
    _results_folder(release)
    release.spec.write_text(release.spec.read_text() + "workspace: results\n")
    return release.run("adapter")


def _workspace_is_home(release: Release) -> list[str]:
    release.write_spec(GOOD_SPEC + f"workspace: {Path.home()}\n")
    return release.run("adapter")


WORKSPACE_CASES = [
    Case("workspace-dot-beside-inputs", _workspace(".", _users_folders), 2, ("holds the input",)),
    Case("workspace-root", _workspace("/"), 2, ("/: the workspace may not be /",)),
    Case("workspace-home", _workspace_is_home, 2, ("home folder",)),
    Case("workspace-is-the-adapter", _workspace("adapter"), 2, ("holds the input",)),
    Case("workspace-users-folder", _workspace("mine", _users_folder), 2, ("not empty", "mine")),
    Case("workspace-holds-results", _workspace_holds_results, 2, ("results", "holds the input")),
    Case(
        "workspace-is-a-file",
        _workspace("notes.txt", lambda r: (r.root / "notes.txt").write_text("x")),
        2,
        ("notes.txt", "a file"),
    ),
]


# --- non-finite numbers: never a model, a score or a card ---------------------------


def _overflowing_lora(adapter: Path) -> None:
    """Finite factors whose product overflows: B = 3e38, A = 1 (the issue's adapter)."""
    tensors = _tensors(adapter)
    for name in tensors:
        if "layers.0.self_attn.q_proj" in name:
            value = 3e38 if "lora_B" in name else 1.0
            tensors[name] = tensors[name].clone().fill_(value)
    _save(adapter, tensors)


def _overflow_merge(release: Release) -> list[str]:
    _overflowing_lora(release.adapter)
    return release.run("adapter", "merge")


def _card_with(name: str, text: str) -> Callable[[Release], list[str]]:
    def make(release: Release) -> list[str]:
        card = release.root / name
        card.write_text(text)
        return ["card", "check", str(card)]

    return make


_GOOD = GOOD_CARD.read_text()
NON_FINITE_CASES = [
    Case("merge-overflows-bf16", _overflow_merge, 2, ("q_proj", "inf or NaN")),
    Case(
        "card-nan-in-table",
        _card_with("nan.md", _GOOD + "\n| Task | Score |\n|---|---|\n| arc | nan |\n"),
        1,
        ("nan.md:", "'nan'"),
    ),
    Case(
        "card-inf-perplexity",
        _card_with("inf.md", _GOOD + "\nPerplexity on held-out text: 12.1 → inf.\n"),
        1,
        ("inf.md:", "'inf'"),
    ),
    Case(
        "card-front-matter-inf",
        _card_with("front.md", _GOOD.replace("---\n", "---\nperplexity: .inf\n", 1)),
        1,
        ("front.md:2", "nan or inf"),
    ),
]


# --- secrets: a token in the spec never reaches a file -------------------------------


def _token_spec(template: str, *, set_token: bool = True) -> Callable[[Release], list[str]]:
    from tests.support.secret_scan import random_token

    def make(release: Release) -> list[str]:
        token = random_token("hf_")
        if set_token:
            release.env.setenv("HF_TOKEN", token)
        release.write_spec(GOOD_SPEC + template.replace("@TOKEN@", token))
        return release.run("adapter")

    return make


SECRET_CASES = [
    Case(
        "secret-token-in-license-link",
        _token_spec("card:\n  license_link: https://huggingface.co/x?token=@TOKEN@\n"),
        2,
        ("release.yaml:8", "card.license_link", "token in HF_TOKEN"),
    ),
    Case(
        "secret-token-as-repo-id",
        _token_spec("push:\n  repo_id: me/@TOKEN@\n"),
        2,
        ("release.yaml:8", "push.repo_id", "HF_TOKEN"),
    ),
    Case(
        "secret-credential-url",
        _token_spec("card:\n  license_link: https://me:s3cret@example.com/license\n"),
        2,
        ("release.yaml:8", "card.license_link", "credentials"),
    ),
    Case(
        "secret-pasted-token-no-env",
        _token_spec("card:\n  summary: 'pushed with @TOKEN@'\n", set_token=False),
        2,
        ("release.yaml:8", "card.summary", "a token"),
    ),
    Case(
        "secret-token-user-in-url",
        _token_spec("card:\n  license_link: https://@TOKEN@@github.com/me/x\n"),
        2,
        ("card.license_link",),
    ),
]


# --- YAML and text without bounds ----------------------------------------------------

ALIAS_BOMB = "l0: &l0 [lol]\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)
)
"""Nine levels of nine aliases: 387 million items from 400 bytes."""


def _spec_text(text: str, *stages: str) -> Callable[[Release], list[str]]:
    def make(release: Release) -> list[str]:
        release.spec.write_text(text.replace("@BASE@", str(release.base)))
        return ["spec", "check", str(release.spec)] if not stages else release.run(*stages)

    return make


def _results_file(name: str, text: str) -> Callable[[Release], list[str]]:
    def make(release: Release) -> list[str]:
        path = release.root / name
        path.write_text(text)
        out = release.workspace / "README.md"
        argv = ["card", "build", "--metadata", str(CARD_YAML), "--results", str(path)]
        return [*argv, "--output", str(out)]

    return make


def _card_yaml(text: str) -> Callable[[Release], list[str]]:
    def make(release: Release) -> list[str]:
        path = release.root / "card.yaml"
        path.write_text(text)
        out = release.workspace / "README.md"
        return ["card", "build", "--metadata", str(path), "--output", str(out)]

    return make


YAML_CASES = [
    Case("yaml-spec-alias-bomb", _spec_text(GOOD_SPEC + ALIAS_BOMB), 2, ("release.yaml", "alias")),
    Case(
        "yaml-spec-alias-bomb-run",
        _spec_text(GOOD_SPEC + ALIAS_BOMB, "adapter"),
        2,
        ("release.yaml", "alias"),
    ),
    Case(
        "yaml-spec-recursive-alias",
        _spec_text(GOOD_SPEC + "card:\n  tags: &t [x, *t]\n"),
        2,
        ("release.yaml", "recursive alias"),
    ),
    Case(
        "yaml-spec-too-large",
        _spec_text(GOOD_SPEC + "# " + "x" * 2**20 + "\n"),
        2,
        ("release.yaml", "larger than 1 MiB"),
    ),
    Case("yaml-spec-deep-nesting", _spec_text("[" * 50_000), 2, ("release.yaml",)),
    Case(
        "yaml-card-alias-bomb",
        _card_with("bomb.md", "---\n" + ALIAS_BOMB + "license: mit\n---\n# bomb\n"),
        1,
        ("bomb.md:", "alias"),
    ),
    Case(
        "yaml-card-dev-zero",
        lambda release: ["card", "check", "/dev/zero"],
        2,
        ("/dev/zero", "larger than 16 MiB"),
    ),
    Case(
        "yaml-results-alias-bomb",
        _results_file("results.yaml", ALIAS_BOMB + "results: []\n"),
        2,
        ("results.yaml", "alias"),
    ),
    Case(
        "yaml-card-yaml-alias-bomb",
        _card_yaml(ALIAS_BOMB + "license: mit\n"),
        2,
        ("card.yaml", "alias"),
    ),
]


# --- what intake must find, before any stage writes ----------------------------------


def _header_edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """Rewrite the adapter file's JSON header (same length, space-padded), data kept."""

    def breaks(adapter: Path) -> None:
        file = adapter / W
        data = file.read_bytes()
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + length])
        edit(header)
        raw = json.dumps(header, separators=(",", ":")).encode()
        assert len(raw) <= length
        file.write_bytes(data[:8] + raw.ljust(length) + data[8 + length :])

    return breaks


def _tensor_entries(header: dict) -> list[dict]:
    return [header[k] for k in sorted(header) if k != "__metadata__"]


def _overlap(header: dict) -> None:
    first, second = _tensor_entries(header)[:2]
    second["data_offsets"] = first["data_offsets"]


def _negative_dim(header: dict) -> None:
    entry = _tensor_entries(header)[0]
    entry["shape"] = [-entry["shape"][0], entry["shape"][1]]


def _shape_lies(header: dict) -> None:
    entry = _tensor_entries(header)[0]
    entry["shape"] = [entry["shape"][0], entry["shape"][1] + 1]


def _base_file(name: str, text: str) -> Callable[[Path], None]:
    return lambda base: (base / name).write_text(text)


def _auto_map(base: Path) -> None:
    path = base / "config.json"
    auto = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    path.write_text(json.dumps(json.loads(path.read_text()) | {"auto_map": auto}))
    (base / "modeling_evil.py").write_text("raise SystemExit('the base ran its code')\n")


INTAKE_CASES = [
    Case(
        "adapter-alpha-a-string",
        _adapter_case(_edit_config(lora_alpha="8")),
        2,
        ("adapter_config.json", "lora_alpha", "'8'", "without quotes"),
    ),
    Case(
        "adapter-rank-a-string",
        _adapter_case(_edit_config(r="4")),
        2,
        ("adapter_config.json", "r is '4'"),
    ),
    Case(
        "adapter-rank-zero", _adapter_case(_edit_config(r=0)), 2, ("adapter_config.json", "r is 0")
    ),
    Case(
        "adapter-target-modules-bad-regex",
        _adapter_case(_edit_config(target_modules="(q_proj")),
        2,
        ("adapter_config.json", "target_modules", "regex"),
    ),
    Case(
        "adapter-target-modules-match-nothing",
        _adapter_case(_edit_config(target_modules=["nope_proj"])),
        2,
        ("adapter_config.json", "nope_proj", "matches no module"),
    ),
    Case(
        "adapter-target-modules-a-number",
        _adapter_case(_edit_config(target_modules=7)),
        2,
        ("adapter_config.json", "target_modules"),
    ),
    Case(
        "adapter-config-a-list",
        _adapter_case(lambda a: (a / "adapter_config.json").write_text("[1, 2]")),
        2,
        ("adapter_config.json", "JSON object"),
    ),
    Case(
        "adapter-rank-pattern-a-list",
        _adapter_case(_edit_config(rank_pattern=[1])),
        2,
        ("adapter_config.json", "rank_pattern"),
    ),
    Case(
        "adapter-overlapping-offsets",
        _adapter_case(_header_edit(_overlap)),
        2,
        (W, "share bytes"),
    ),
    Case("adapter-negative-dim", _adapter_case(_header_edit(_negative_dim)), 2, (W, "shape")),
    Case("adapter-shape-lies", _adapter_case(_header_edit(_shape_lies)), 2, (W, "data_offsets")),
    Case(
        "adapter-header-no-tensors",
        _adapter_case(_header_edit(lambda h: h.clear())),  # then no tensors at all
        2,
        ("adapter",),
    ),
    Case("base-auto-map-no-opt-in", _base_case(_auto_map), 2, ("config.json", "auto_map")),
    Case(
        "base-chat-template-escapes-sandbox",
        _base_case(_base_file("chat_template.jinja", "{{ ''.__class__.__mro__ }}")),
        2,
        ("chat_template.jinja", "sandbox"),
    ),
    Case(
        "base-chat-template-syntax",
        _base_case(_base_file("chat_template.jinja", "{% for m in messages %}{{ m }")),
        2,
        ("chat_template.jinja", "sandbox"),
    ),
]


# --- the smaller ones ----------------------------------------------------------------


def _spec_check_missing_adapter(release: Release) -> list[str]:
    release.write_spec(GOOD_SPEC.replace("path: adapter", "path: gone"))
    return ["spec", "check", str(release.spec)]


def _push_dry_run_unbuilt(release: Release) -> list[str]:
    release.write_spec(GOOD_SPEC + "push:\n  repo_id: me/tiny\n")
    return ["push", "--dry-run", str(release.spec)]


_LMEVAL = Path(__file__).parent / "cards_samples" / "results_2026-03-01T10-00-00.123456.json"


def _lmeval_edit(edit: Callable[[dict], None]) -> Callable[[Release], list[str]]:
    def make(release: Release) -> list[str]:
        data = json.loads(_LMEVAL.read_text())
        edit(data)
        path = release.root / "results_2026-03-01T10-00-00.123456.json"
        path.write_text(json.dumps(data))
        out = release.workspace / "README.md"
        argv = ["card", "build", "--metadata", str(CARD_YAML), "--results", str(path)]
        return [*argv, "--output", str(out)]

    return make


def _string_score(data: dict) -> None:
    task = next(iter(data["results"]))
    key = next(k for k in data["results"][task] if k.startswith("acc,"))
    data["results"][task][key] = "0.5"


def _piped_task(data: dict) -> None:
    task = next(iter(data["results"]))
    data["results"]["arc | evil\nrow"] = data["results"].pop(task)


SMALL_CASES = [
    Case(
        "spec-version-a-number",
        _spec_text(GOOD_SPEC.replace("0.1.0", "1.0")),
        2,
        ("release.yaml:2", "version", "quote it"),
    ),
    Case("spec-check-missing-adapter", _spec_check_missing_adapter, 2, ("adapter.path", "gone")),
    Case("push-dry-run-unbuilt", _push_dry_run_unbuilt, 2, ("no release has been built",)),
    Case("results-score-a-string", _lmeval_edit(_string_score), 2, ("results.", "'0.5'")),
    Case("results-task-name-breaks-table", _lmeval_edit(_piped_task), 2, ("'|'",)),
]


CASES = (
    SPEC_CASES
    + ADAPTER_CASES
    + BASE_CASES
    + CARD_CASES
    + WORKSPACE_CASES
    + NON_FINITE_CASES
    + SECRET_CASES
    + YAML_CASES
    + INTAKE_CASES
    + SMALL_CASES
)


@pytest.fixture
def release(tiny_llama_dir, tiny_qv_adapter, tmp_path, monkeypatch) -> Release:
    shutil.copytree(tiny_qv_adapter, tmp_path / "adapter")
    release = Release(tmp_path, tiny_llama_dir, monkeypatch)
    release.write_spec(GOOD_SPEC)
    return release


def _snapshot(workspace: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(workspace)): p.read_bytes()
        for p in sorted(workspace.rglob("*"))
        if p.is_file()
    }


def _check_nothing_left(release: Release, before: dict[str, bytes]) -> None:
    workspace = release.workspace
    leftovers = [p for p in release.root.rglob("*") if "partial" in p.name.lower()]
    assert leftovers == []
    if not workspace.exists():
        return
    manifest_path = workspace / "manifest.json"
    recorded = json.loads(manifest_path.read_text())["stages"] if manifest_path.exists() else {}
    before_manifest = json.loads(before.get("manifest.json", b'{"stages": {}}'))["stages"]
    for name, record in before_manifest.items():
        assert recorded[name] == record  # an earlier stage's record is never touched
    folders = {p.name for p in workspace.iterdir() if p.is_dir()}  # .lock: the runner's
    assert folders <= set(recorded)  # a folder only under a finished stage's name
    own = {"manifest.json", ".lock", MARKER_NAME}
    outputs = {p.name for p in workspace.iterdir() if p.is_file()} - own
    assert outputs <= {n for n in before if "/" not in n}  # no new loose file


def _hashes(*roots: Path) -> dict[Path, str]:
    """sha256 of every file under ``roots``: the user's files, the base and the workspace."""
    return {
        path: hashlib.sha256(path.read_bytes()).hexdigest()
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _check_users_files_kept(release: Release, before: dict[Path, str]) -> None:
    """Every file there before is there with the same bytes; new ones only in the
    workspace (checked by ``_check_nothing_left``)."""
    after = _hashes(release.root, release.base)
    assert {p: h for p, h in after.items() if p in before} == before
    new = [p for p in after if p not in before and not p.is_relative_to(release.workspace)]
    assert new == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_cleanly(case: Case, release: Release, capsys):
    argv = case.make(release)
    before = _snapshot(release.workspace) if release.workspace.exists() else {}
    hashed = _hashes(release.root, release.base)
    capsys.readouterr()

    code = main(argv)

    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "this is a bug" not in out + err
    assert ".partial" not in out + err  # the user's file is named, never a staged copy
    assert code == case.code, err
    lines = err.strip().splitlines()
    where = out if argv[:2] == ["card", "check"] and code == 1 else err
    if argv[:2] == ["card", "check"]:
        # the summary line, after at most one "error: FILE: unreadable" line
        assert lines[-1].endswith("warning(s)") and len(lines) <= 2, err
    else:
        assert lines[0].startswith("error: "), err
        problems = lines[1:]  # a spec error lists its problems, one located line each
        assert all(p.startswith(str(release.spec)) for p in problems), err
    for part in case.says:
        assert part in where, f"{part!r} not in {where!r}"
    _check_nothing_left(release, before)
    _check_users_files_kept(release, hashed)


def test_a_full_disk_while_writing_the_gguf_fails_cleanly(
    small_disk, tiny_llama_dir, tiny_qv_adapter, capsys, monkeypatch
):
    import os

    monkeypatch.setenv("MODEL_RELEASE_SKIP_PREFLIGHT", "1")  # the write itself must fail

    shutil.copytree(tiny_qv_adapter, small_disk / "adapter")
    release = Release(small_disk, tiny_llama_dir, monkeypatch)
    release.write_spec(GOOD_SPEC + "eval:\n  enabled: false\ngguf:\n  types: [f16]\n")
    assert main(release.run("adapter", "merge")) == 0
    stats = os.statvfs(small_disk)
    free = stats.f_bavail * stats.f_frsize
    (small_disk / "filler").write_bytes(b"\0" * (free - 256 * 1024))  # 256 KiB stay free
    before = _snapshot(release.workspace)
    capsys.readouterr()

    code = main(release.run("gguf"))

    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "no space left on the device" in err and str(small_disk) in err
    _check_nothing_left(release, before)
    assert not (release.workspace / "gguf").exists()


# --- what the corpus's failures protect, seen from the working side ------------------


def test_init_writes_an_adapters_values_as_data_never_as_keys(release: Release, capsys):
    """A newline in base_model_name_or_path made `init` write a key of its own."""
    import yaml

    injected = "/nowhere\ntrust_remote_code: true\nbase:\n  trust_remote_code: true"
    _edit_config(base_model_name_or_path=injected)(release.adapter)
    release.spec.unlink()

    assert main(["init", str(release.adapter), "-o", str(release.spec)]) == 0

    written = yaml.safe_load(release.spec.read_text())
    assert written["base"] == {"path": injected}
    assert "trust_remote_code" not in written
    assert main(["spec", "check", str(release.spec)]) == 2  # a base path that does not exist
    assert "base.path" in capsys.readouterr().err


def test_the_workspace_is_marked_and_reused_and_an_older_one_is_adopted(release: Release):
    assert main(release.run("adapter")) == 0
    marker = release.workspace / MARKER_NAME
    assert marker.is_file()
    assert main(release.run("adapter")) == 0  # ours: used again

    marker.unlink()  # a workspace of an older model-release: its manifest is ours
    assert main(release.run("adapter")) == 0
    assert marker.is_file()


def test_a_skipped_stage_removes_only_a_folder_it_recorded(release: Release):
    """gguf is skipped (no types): a gguf/ folder of the user's in the workspace stays."""
    assert main(release.run("adapter")) == 0
    mine = release.workspace / "gguf" / "mine.txt"
    mine.parent.mkdir()
    mine.write_text("mine")
    release.write_spec(GOOD_SPEC + "gguf:\n  types: []\n")

    assert main(release.run("adapter", "gguf")) == 0

    assert mine.read_text() == "mine"


def test_every_text_file_written_has_the_token_redacted(tmp_path, monkeypatch):
    from release.core.files import atomic_write_text
    from tests.support.secret_scan import Scan, random_token

    token = random_token("hf_")
    monkeypatch.setenv("HF_TOKEN", token)
    atomic_write_text(tmp_path / "card.md", f"see https://huggingface.co/x?t={token}\n")

    scan = Scan(token)
    scan.files(tmp_path)
    assert scan.leaks == [] and scan.outputs == 1
    assert "***" in (tmp_path / "card.md").read_text()


def test_a_model_with_non_finite_logits_fails_the_sanity_checks(tiny_llama_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from release.core.errors import WorkError
    from release.evaluate.sanity import next_token_logits, perplexity

    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight.fill_(math.inf)
    ids = tokenizer("Water boils at one hundred degrees.").input_ids

    with pytest.raises(WorkError, match="perplexity on the held-out text is nan"):
        list(perplexity(model, [ids]))  # a pass: the verdict comes when it ends
    with pytest.raises(WorkError, match="inf or NaN logits"):
        list(next_token_logits(model, tokenizer, ["Water boils at"]))


def test_status_into_a_closed_pipe_is_not_an_error(release: Release, monkeypatch):
    """`model-release status | head -1`: the reader went away after one line."""
    import os

    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as closed_pipe:
        monkeypatch.setattr("sys.stdout", closed_pipe)
        assert main(["status", str(release.spec)]) == 0
