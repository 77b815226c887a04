"""The bad-input corpus: every case runs the real CLI in-process and must fail cleanly.

A clean failure is: the right exit code (2 for bad input, 1 for a failed stage), an error
on stderr that names what is wrong and where, in one line (a spec error has one more
line per located problem), no traceback, and nothing left behind: no .partial files, no
stage folder the manifest does not record, and the manifest's records unchanged.

Text cases are files under tests/bad_inputs/ (``@BASE@`` in a release.yaml stands for
the tiny base's folder); binary cases are made here from a good tiny release.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from release.cli import main

pytest_plugins = ("tests.disk_fixtures",)  # the small_disk fixture

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
    from tests.lora_models import make_adapter, make_tiny_gemma4

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

CASES = SPEC_CASES + ADAPTER_CASES + BASE_CASES + CARD_CASES


@pytest.fixture
def release(tiny_llama_dir, tiny_qv_adapter, tmp_path) -> Release:
    shutil.copytree(tiny_qv_adapter, tmp_path / "adapter")
    release = Release(tmp_path, tiny_llama_dir)
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
    outputs = {p.name for p in workspace.iterdir() if p.is_file()} - {"manifest.json", ".lock"}
    assert outputs <= {n for n in before if "/" not in n}  # no new loose file


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_cleanly(case: Case, release: Release, capsys):
    argv = case.make(release)
    before = _snapshot(release.workspace) if release.workspace.exists() else {}
    capsys.readouterr()

    code = main(argv)

    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
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


def test_a_full_disk_while_writing_the_gguf_fails_cleanly(
    small_disk, tiny_llama_dir, tiny_qv_adapter, capsys, monkeypatch
):
    import os

    monkeypatch.setenv("MODEL_RELEASE_SKIP_PREFLIGHT", "1")  # the write itself must fail

    shutil.copytree(tiny_qv_adapter, small_disk / "adapter")
    release = Release(small_disk, tiny_llama_dir)
    release.write_spec(GOOD_SPEC + "gguf:\n  types: [f16]\n")
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
