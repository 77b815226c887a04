"""The GGUF stage on tiny models: files, facts, checks by llama.cpp and transformers,
clear errors, and nothing left behind when it stops."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys

import gguf
import pytest

from release.core.errors import Cancelled, StageError
from release.core.events import Log, Progress
from release.core.files import sha256_file
from release.gguf.facts import GGUFFacts
from release.gguf.formats import FORMATS
from release.stages.gguf import GGUFStage
from tests.support.gguf_helpers import gguf_context, run_gguf_stage

pytest_plugins = ("tests.support.gguf_fixtures",)


def _field(reader: gguf.GGUFReader, key: str):
    return reader.get_field(key).contents()


def _types(reader: gguf.GGUFReader) -> dict[str, str]:
    return {t.name: t.tensor_type.name for t in reader.tensors}


def test_stage_writes_verified_files_with_measured_facts(confident_llama_dir, tmp_path, capfd):
    """q4_0 is ours; q4_k_m is llama.cpp's quantizer's, from an f16 the release did not
    ask for, which is written, used and removed."""
    ctx = gguf_context(confident_llama_dir, tmp_path, types=["q4_0", "q4_k_m"])
    output, events = run_gguf_stage(ctx)
    # the libraries' own chatter stays off the terminal: llama.cpp's line per tensor that
    # falls back to another type (every row here is 64 wide), transformers' tqdm bar
    printed = "".join(capfd.readouterr())
    assert "falling back" not in printed and "de-quantizing" not in printed

    names = ["demo-Q4_0.gguf", "demo-Q4_K_M.gguf"]
    assert sorted(p.name for p in ctx.out_dir.iterdir()) == names
    assert any(isinstance(e, Progress) and e.unit == "tensors" for e in events)
    # the stage says what its checks cost next to what the export did
    logged = [e.message for e in events if isinstance(e, Log)]
    assert any(re.fullmatch(r"2 files: export [\d.]+ s, checks [\d.]+ s \(.*\)", m) for m in logged)
    assert output.measured["export_seconds"] > 0 and output.measured["check_seconds"] > 0
    facts = output.facts.as_json()  # as the manifest holds them
    assert facts["architecture"] == "LlamaForCausalLM" and facts["exporter"] == "built-in"
    assert set(facts["tools"]) == {"gguf", "llama_cpp"}
    assert [f["name"] for f in facts["files"]] == names
    assert [f["exporter"] for f in facts["files"]] == ["built-in", "llama.cpp quantizer"]
    for record in facts["files"]:
        path = ctx.out_dir / record["name"]
        assert record["bytes"] == path.stat().st_size
        assert record["sha256"] == sha256_file(path)
        assert set(record["top1_agreement"]) == {"llama_cpp"}  # the one runtime, once
        for loader, agreement in record["confident_top1_agreement"].items():
            assert agreement >= FORMATS[record["type"]].min_top1, (record["name"], loader)
        assert record["tokenizer_agreement"] is True
        assert record["smoke_output"]

    q4 = gguf.GGUFReader(ctx.out_dir / "demo-Q4_0.gguf")
    types = _types(q4)
    assert types["blk.1.ffn_down.weight"] == "Q4_0" and types["output.weight"] == "Q8_0"
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert _field(q4, "general.name") == "demo"
    assert _field(q4, "general.base_model.0.repo_url").endswith("SmolLM2-135M-Instruct")
    assert _field(q4, "general.languages") == ["en"]
    assert _field(q4, "tokenizer.ggml.pre") == "smollm"
    assert _field(q4, "tokenizer.ggml.add_bos_token") is False
    assert "im_start" in _field(q4, "tokenizer.chat_template")
    k_quant = gguf.GGUFReader(ctx.out_dir / "demo-Q4_K_M.gguf")
    assert _field(k_quant, "general.file_type") == gguf.LlamaFileType.MOSTLY_Q4_K_M
    assert set(_types(k_quant)) == set(types)


def test_without_llama_cpp_transformers_checks_the_file(confident_llama_dir, tmp_path, monkeypatch):
    """Where llama.cpp is not installed, transformers' GGUF loader is the check, and it
    answers the smoke prompt."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now fails
    ctx = gguf_context(confident_llama_dir, tmp_path, types=["q8_0"])
    output, _ = run_gguf_stage(ctx)
    (record,) = output.facts.as_json()["files"]
    assert set(record["top1_agreement"]) == {"transformers"}
    assert record["confident_top1_agreement"]["transformers"] >= FORMATS["q8_0"].min_top1
    assert record["smoke_output"] and record["tokenizer_agreement"] is None


def test_k_quants_without_llama_cpp_name_the_extra(confident_llama_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now fails
    ctx = gguf_context(confident_llama_dir, tmp_path, types=["f16", "q4_k_m"])
    with pytest.raises(StageError, match=r"q4_k_m need llama\.cpp's quantizer") as raised:
        run_gguf_stage(ctx)
    assert "model-release[llama-cpp]" in raised.value.hint
    assert list(ctx.out_dir.iterdir()) == []


def test_unknown_architecture_without_converter_lists_the_supported(
    confident_llama_dir, tmp_path, monkeypatch
):
    """Without llama-cpp-python there is no pinned converter either."""
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # import llama_cpp now fails
    ctx = gguf_context(confident_llama_dir, tmp_path, types=["f16"])
    config_path = ctx.stage_dir("merge") / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = ["FalconForCausalLM"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(StageError, match="FalconForCausalLM is not built in") as raised:
        run_gguf_stage(ctx)
    assert "llama-cpp-python" in str(raised.value)
    assert "Qwen3ForCausalLM" in raised.value.hint and "llama_cpp_dir" in raised.value.hint


def test_unknown_pre_tokenizer_is_refused_before_any_work(confident_llama_dir, tmp_path):
    ctx = gguf_context(confident_llama_dir, tmp_path, types=["f16"])
    tokenizer_path = ctx.stage_dir("merge") / "tokenizer.json"
    tokenizer = json.loads(tokenizer_path.read_text())
    tokenizer["pre_tokenizer"]["use_regex"] = False  # splits the probe text differently
    tokenizer_path.write_text(json.dumps(tokenizer))
    with pytest.raises(StageError, match="BPE pre-tokenizer not recognised"):
        run_gguf_stage(ctx)
    assert list(ctx.out_dir.iterdir()) == []


def test_a_tensor_without_a_gguf_name_is_refused_before_any_work(confident_llama_dir, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    ctx = gguf_context(confident_llama_dir, tmp_path, types=["f16"])
    weights = ctx.stage_dir("merge") / "model.safetensors"
    tensors = load_file(weights)
    tensors["model.layers.0.self_attn.mystery.weight"] = torch.zeros(4, 64, dtype=torch.bfloat16)
    save_file(tensors, weights, metadata={"format": "pt"})
    with pytest.raises(StageError, match=r"self_attn\.mystery\.weight: no GGUF name in llama"):
        run_gguf_stage(ctx)
    assert list(ctx.out_dir.iterdir()) == []


def test_a_file_judged_after_the_next_was_written_still_never_gets_its_name(
    confident_llama_dir, tmp_path, monkeypatch
):
    """llama.cpp checks q8_0 while q4_0 is written; q8_0 failing (a bar no file can
    pass) stops the stage naming q8_0, and neither file is left, named or hidden."""
    monkeypatch.setitem(FORMATS, "q8_0", dataclasses.replace(FORMATS["q8_0"], min_top1=1.01))
    ctx = gguf_context(confident_llama_dir, tmp_path, types=["q8_0", "q4_0"])
    run = GGUFStage().run(ctx)
    logged = []
    with pytest.raises(StageError, match=r"demo-Q8_0\.gguf: top-1 agreement .* below 1\.01"):
        for event in run:
            if isinstance(event, Log):
                logged.append(event.message)
    assert "writing demo-Q4_0.gguf" in logged  # judged after the next file was written
    assert list(ctx.out_dir.iterdir()) == []


def test_cancelled_export_leaves_no_file(confident_llama_dir, tmp_path):
    ctx = gguf_context(confident_llama_dir, tmp_path, types=["f16"])
    run = GGUFStage().run(ctx)
    with pytest.raises(Cancelled):
        for event in run:
            if isinstance(event, Progress):
                ctx.cancel.set()
    assert list(ctx.out_dir.iterdir()) == []


def test_no_types_skips_the_stage(confident_llama_dir, tmp_path):
    ctx = gguf_context(confident_llama_dir, tmp_path, types=[])
    assert GGUFStage().skip_reason(ctx.spec) == "gguf.types is empty"


def test_unknown_architecture_goes_to_llama_cpp_converter(
    smollm2_tokenizer_dir, converter_dir, tmp_path
):
    """GPT-2 is not built in: the pinned llama.cpp converter (the runtime's own commit)
    writes it, and it is checked the same way, with our general.* values passed through
    the converter's override file; the stage records which llama.cpp it was."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=1024,
        n_ctx=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        model.transformer.wte.weight.mul_(20)  # confident, as in confident_llama_dir
    model_dir = tmp_path / "gpt2"
    model.to(torch.bfloat16).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    ctx = gguf_context(model_dir, tmp_path / "ws", types=["f16"])
    output, _ = run_gguf_stage(ctx)
    (record,) = output.facts.files
    build = json.loads((converter_dir / "BUILD.json").read_text())
    assert output.facts.llama_cpp.commit == build["commit"]
    assert output.facts.llama_cpp.package == importlib.metadata.version("llama-cpp-python")
    assert output.facts.exporter == record.exporter == "llama.cpp convert_hf_to_gguf.py"
    assert record.top1_agreement["llama_cpp"] >= 0.99
    reader = gguf.GGUFReader(ctx.out_dir / "demo-F16.gguf")
    assert _field(reader, "general.architecture") == "gpt2"
    assert _field(reader, "general.name") == "demo"
    assert _field(reader, "general.quantized_by") == "model-release"
    shutil.rmtree(tmp_path / "ws")


def test_a_merged_model_transformers_cannot_run_is_one_line(confident_llama_dir, tmp_path):
    """Where the evaluate stage kept no reference, it is computed in a child process;
    when transformers cannot load the merged model there, the stage says so in one
    line, quoting the child's last word."""
    from release.core.errors import WorkError
    from release.gguf.agreement import reference_probe

    model = shutil.copytree(confident_llama_dir, tmp_path / "merged")
    config = json.loads((model / "config.json").read_text())
    config["hidden_size"] = 96  # the weights say 64
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(WorkError, match="transformers could not run the merged model") as raised:
        reference_probe(model)
    assert "\n" not in raised.value.message and "transformers failed (exit 1)" in str(raised.value)


def test_a_llama_cpp_checkout_is_recorded_by_folder_and_commit(tmp_path, monkeypatch):
    """gguf.llama_cpp_dir / $LLAMA_CPP_DIR: a user's checkout has no package version;
    the stage records its folder and the commit git says it is at."""
    from release.gguf.delegate import find_converter

    checkout = tmp_path / "llama.cpp"
    checkout.mkdir()
    (checkout / "convert_hf_to_gguf.py").write_text("# the user's converter\n")
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "converter"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()

    monkeypatch.setenv("LLAMA_CPP_DIR", str(checkout))
    converter = find_converter(None)
    assert converter.script == checkout / "convert_hf_to_gguf.py"
    assert converter.build.label == f"llama.cpp checkout {checkout}"
    assert converter.build.commit == head and converter.build.package is None
    facts = GGUFFacts(llama_cpp=converter.build)
    assert GGUFFacts.model_validate_json(facts.model_dump_json()).llama_cpp == converter.build
